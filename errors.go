package pluginhost

import (
	"errors"
	"slices"
)

// Sentinel errors, for errors.Is. Errors returned by this package wrap them
// with detail: which plugin, which field, what to do.
var (
	// ErrNilPlugin: Register was called with a nil plugin.
	ErrNilPlugin = errors.New("pluginhost: nil plugin")
	// ErrDuplicateID: two plugins registered the same id.
	ErrDuplicateID = errors.New("pluginhost: duplicate plugin id")
	// ErrAlreadyStarted: Start was called on a Manager that started before.
	ErrAlreadyStarted = errors.New("pluginhost: manager already started")
	// ErrClosed: the Manager was shut down.
	ErrClosed = errors.New("pluginhost: manager is shut down")
	// ErrNotFound: no plugin, dependency or setting with that name.
	ErrNotFound = errors.New("pluginhost: not found")
	// ErrIncompatible: a version constraint is not met.
	ErrIncompatible = errors.New("pluginhost: incompatible version")
	// ErrDependency: a plugin cannot start because a dependency is not
	// running: it is missing, failed or disabled, or the dependencies
	// form a cycle. Where the dependency failed, its error is in the chain
	// too.
	ErrDependency = errors.New("pluginhost: dependency not running")
	// ErrStartFailed: a plugin failed a phase while Enable started it, or
	// cannot be started at all (its manifest did not parse, or it is on a
	// dependency cycle). The error wraps the cause as well.
	ErrStartFailed = errors.New("pluginhost: plugin failed to start")
	// ErrRequired: a plugin that Config marks required did not start. The
	// error wraps the plugin's failure as well (see PluginStatus.Err), or
	// ErrNotFound when the plugin is not registered.
	ErrRequired = errors.New("pluginhost: required plugin did not start")
	// ErrSettingType: a setting was read or written as the wrong type.
	ErrSettingType = errors.New("pluginhost: wrong setting type")
	// ErrNoSecretKey: an encrypted setting was written without
	// Config.SecretKey.
	ErrNoSecretKey = errors.New("pluginhost: no secret key")
)

// causedError is an error with a text of its own that wraps causes whose
// text it does not repeat, for errors.Is and errors.As.
type causedError struct {
	text   string
	causes []error
}

// withCauses returns an error with text that wraps causes, leaving out the
// nil ones.
func withCauses(text string, causes ...error) error {
	return &causedError{text: text, causes: slices.DeleteFunc(causes, func(err error) bool { return err == nil })}
}

func (e *causedError) Error() string   { return e.text }
func (e *causedError) Unwrap() []error { return e.causes }
