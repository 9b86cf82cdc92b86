package pluginid

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReserved(t *testing.T) {
	t.Parallel()
	require.True(t, Reserved(Library))
	require.True(t, Reserved(Core))
	require.True(t, Reserved("core"))
	require.True(t, Reserved("pluginhost"))
	require.False(t, Reserved("core-extras"))
	require.False(t, Reserved(""))
}
