package rule

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
)

// Elector runs rule evaluation only while this ruler is the leader; see
// internal/leaderelection. work's context ends when leadership does, and Run waits for
// work to return before anyone else may lead.
type Elector interface {
	Run(ctx context.Context, work func(context.Context) error) error
}

// ruleSet is the rule set in force: the files the last successful reload read, with the
// content it read.
type ruleSet struct {
	files   []string
	content map[string][]byte
}

// readRuleSet reads files and checks them with a loader of its own, so that a bad file
// changes nothing.
func (r *Ruler) readRuleSet(files []string) (*ruleSet, []error) {
	set := &ruleSet{files: files, content: map[string][]byte{}}
	check := NewLoader(r.parser, r.logger)
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read rule file %s: %w", f, err))
			continue
		}
		set.content[f] = b
		_, ferrs := check.parse(f, b, false, model.UTF8Validation)
		errs = append(errs, ferrs...)
	}
	return set, errs
}

// setLoader is the rules.GroupLoader of the ruler's managers. It parses the rule set in
// force rather than reading the files again, so that a manager started for a new term of
// leadership evaluates the rules the last reload accepted, not whatever the files hold by
// then. set is only read by rules.Manager.Update, which the ruler calls with reloadMu held.
type setLoader struct {
	*Loader
	set *ruleSet
}

func (s *setLoader) Load(file string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	b, ok := s.set.content[file]
	if !ok {
		return nil, []error{fmt.Errorf("rule file %s is not in the rule set in force", file)}
	}
	return s.parse(file, b, ignoreUnknownFields, scheme)
}

// manager is one Prometheus rules manager. A stopped manager cannot run again, so each
// term of leadership gets a new one.
type manager struct {
	*rules.Manager
	cancel  context.CancelFunc // ends the context its evaluations run with
	started bool               // Run was called; guarded by Ruler.reloadMu
}

// newManager builds a manager from the ruler's options. All managers share the group
// metrics, which are registered once.
func (r *Ruler) newManager() *manager {
	ctx, cancel := context.WithCancel(context.Background())
	o := r.managerOpts
	o.Context = ctx
	return &manager{Manager: rules.NewManager(&o), cancel: cancel}
}

// load loads the rule set in force into m.
func (r *Ruler) load(m *manager) error {
	ext := ""
	if r.cfg.ExternalURL != nil {
		ext = r.cfg.ExternalURL.String()
	}
	return m.Update(r.cfg.EvalInterval, r.loader.set.files, r.cfg.Labels, ext, r.iterate)
}

// iterate evaluates one group with its partial response strategy.
func (r *Ruler) iterate(ctx context.Context, g *rules.Group, ts time.Time) {
	ctx = context.WithValue(ctx, strategyKey{}, r.loader.PartialResponse(g.File(), g.Name()))
	rules.DefaultEvalIterationFunc(ctx, g, ts)
}

// Evaluate evaluates the rule groups and sends their alerts until ctx is done, then
// cancels the evaluations in flight and waits for every group to stop: once it returns,
// no rule is evaluated and no alert produced. Each call after the first runs a new rules
// manager with the rule set in force; alerts restore their `for` state from the local
// TSDB, as after a restart (the time as follower counts as an outage).
func (r *Ruler) Evaluate(ctx context.Context) error {
	m, err := r.startTerm()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run()
	}()
	<-ctx.Done()
	m.cancel()
	// Stop waits for the groups, which start only once Run has begun: Run is already
	// on its way, so it cannot hang.
	m.Stop()
	<-done
	return nil
}

// startTerm returns the manager to run: the one New built and Reload filled if it never
// ran, else a new one loaded with the rule set in force.
func (r *Ruler) startTerm() (*manager, error) {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if m := r.mgr.Load(); !m.started {
		m.started = true
		return m, nil
	}
	m := r.newManager()
	if err := r.load(m); err != nil {
		return nil, fmt.Errorf("load the rules in force: %w", err)
	}
	m.started = true
	r.mgr.Store(m)
	return m, nil
}
