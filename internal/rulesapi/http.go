package rulesapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/vigilhq/vigil/internal/storeapi/rulespb"
)

// RulesHandler serves Prometheus's /api/v1/rules from src (GET or POST): the
// parameters of ParseRequest, then the Prometheus envelope with src's warnings.
func RulesHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", "error parsing form values: "+err.Error())
			return
		}
		req, opts, err := ParseRequest(r.Form)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		groups, warnings, ok := fetch(w, r, src, req)
		if !ok {
			return
		}
		data, err := RulesJSON(groups, opts.ExcludeAlerts)
		writeData(w, data, warnings, err)
	})
}

// AlertsHandler serves Prometheus's /api/v1/alerts from src: the instances of every
// alerting rule.
func AlertsHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		groups, warnings, ok := fetch(w, r, src, &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT})
		if !ok {
			return
		}
		data, err := AlertsJSON(groups)
		writeData(w, data, warnings, err)
	})
}

func fetch(w http.ResponseWriter, r *http.Request, src Source, req *rulespb.RulesRequest) ([]*rulespb.RuleGroup, []string, bool) {
	groups, warnings, err := src.RuleGroups(r.Context(), req)
	if err == nil {
		groups, err = Filter(groups, req)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "error retrieving rules: "+err.Error())
		return nil, nil, false
	}
	return groups, warnings, true
}

// writeData writes {"status":"success","data":data[,"warnings":[...]]}.
func writeData(w http.ResponseWriter, data []byte, warnings []string, err error) {
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	b := make([]byte, 0, len(data)+64)
	b = append(b, `{"status":"success","data":`...)
	b = append(b, data...)
	if len(warnings) > 0 {
		wj, _ := json.Marshal(warnings)
		b = append(b, `,"warnings":`...)
		b = append(b, wj...)
	}
	b = append(b, '}')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	b, err := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
	if err != nil {
		b = []byte(`{"status":"error","errorType":"internal","error":"encoding error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// IsParamError reports whether err is a bad request parameter.
func IsParamError(err error) bool {
	var pe *ParamError
	return errors.As(err, &pe)
}
