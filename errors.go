package pluginhost

import "errors"

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
	// running.
	ErrDependency = errors.New("pluginhost: dependency not running")
	// ErrStartFailed: a plugin failed a phase while Enable started it.
	ErrStartFailed = errors.New("pluginhost: plugin failed to start")
	// ErrRequired: a plugin that Config marks required did not start.
	ErrRequired = errors.New("pluginhost: required plugin did not start")
	// ErrSettingType: a setting was read or written as the wrong type.
	ErrSettingType = errors.New("pluginhost: wrong setting type")
	// ErrNoSecretKey: an encrypted setting was written without
	// Config.SecretKey.
	ErrNoSecretKey = errors.New("pluginhost: no secret key")
)
