package reloader

import (
	"net/http"
	"net/url"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vigilhq/vigil/internal/cliflag"
)

// Flags are the sidecar's --reloader.* flags, with Thanos's names and defaults.
type Flags struct {
	configFile, outputFile *string
	ruleDirs               *[]string
	watch, retry           *time.Duration
	method                 *string
}

// RegisterFlags registers the --reloader.* flags on cmd.
func RegisterFlags(cmd *kingpin.CmdClause) *Flags {
	f := &Flags{
		configFile: cmd.Flag("reloader.config-file", "Config file (or, with --reloader.config-envsubst-file, its template, "+
			"which may be gzipped) to follow; Prometheus is reloaded when it changes.").Default("").String(),
		outputFile: cmd.Flag("reloader.config-envsubst-file", "Where to write --reloader.config-file with $(NAME) replaced "+
			"from the environment; point Prometheus' --config.file here.").Default("").String(),
		ruleDirs: cmd.Flag("reloader.rule-dir", "Directory whose files (recursively) are followed; Prometheus is reloaded "+
			"when one changes. Repeatable.").Strings(),
		watch: cliflag.Duration(cmd.Flag("reloader.watch-interval", "How often the config and rule files are re-read "+
			"even without a change seen, and how long a failing reload is retried in one go.").Default("3m")),
		retry: cliflag.Duration(cmd.Flag("reloader.retry-interval", "Pause between attempts of a failing reload.").Default("5s")),
		method: cmd.Flag("reloader.method", "How to reload Prometheus: http (POST /-/reload; Prometheus needs "+
			"--web.enable-lifecycle). signal is not supported yet.").Default(MethodHTTP).Enum(MethodHTTP, MethodSignal),
	}
	// Accepted so that Thanos command lines parse; it only matters for signal.
	cmd.Flag("reloader.process-name", "Process to send SIGHUP with --reloader.method=signal (not supported yet).").
		Default("prometheus").String()
	return f
}

// Options returns the reloader options the flags give, reloading the Prometheus at
// promURL through hc; ok is false when no --reloader.config-file or --reloader.rule-dir
// is set, and the reloader is not needed.
func (f *Flags) Options(hc *http.Client, promURL *url.URL) (opts Options, ok bool, err error) {
	opts = Options{ConfigFile: *f.configFile, OutputFile: *f.outputFile, RuleDirs: *f.ruleDirs,
		WatchInterval: *f.watch, RetryInterval: *f.retry}
	if !opts.Enabled() {
		return opts, false, nil
	}
	if opts.Trigger, err = NewTrigger(*f.method, hc, promURL); err != nil {
		return opts, false, err
	}
	return opts, true, nil
}
