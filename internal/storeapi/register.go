package storeapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/storeapi/infopb"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// StoreAPI is what a component implements to serve thanos.Store data calls.
type StoreAPI interface {
	Series(*storepb.SeriesRequest, storepb.Store_SeriesServer) error
	LabelNames(context.Context, *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error)
	LabelValues(context.Context, *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error)
}

// Register serves s as thanos.Store and info as thanos.info.Info on srv. The legacy
// thanos.Store/Info call (queriers before v0.23) is answered from info.
func Register(srv *grpc.Server, s StoreAPI, info infopb.InfoServer, typ storepb.StoreType) {
	storepb.RegisterStoreServer(srv, legacyStore{StoreAPI: s, info: info, typ: typ})
	infopb.RegisterInfoServer(srv, info)
}

type legacyStore struct {
	storepb.UnsafeStoreServer
	StoreAPI
	info infopb.InfoServer
	typ  storepb.StoreType
}

// Info answers the legacy Store.Info call from the Info API.
func (l legacyStore) Info(ctx context.Context, _ *storepb.InfoRequest) (*storepb.InfoResponse, error) {
	in, err := l.info.Info(ctx, &infopb.InfoRequest{})
	if err != nil {
		return nil, err
	}
	out := &storepb.InfoResponse{StoreType: l.typ}
	if st := in.GetStore(); st != nil {
		out.MinTime, out.MaxTime = st.GetMinTime(), st.GetMaxTime()
	}
	out.LabelSets = in.GetLabelSets()
	if len(out.LabelSets) > 0 {
		out.Labels = out.LabelSets[0].GetLabels()
	}
	return out, nil
}
