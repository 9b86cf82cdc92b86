package pluginhost

import (
	"context"
	"errors"
)

// Disable stops plugin id at runtime. (Stub, being written.)
func (m *Manager) Disable(ctx context.Context, id string) error {
	return errors.New("pluginhost: Disable is not implemented yet")
}

// Enable starts plugin id at runtime. (Stub, being written.)
func (m *Manager) Enable(ctx context.Context, id string) error {
	return errors.New("pluginhost: Enable is not implemented yet")
}
