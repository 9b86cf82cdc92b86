package pluginhost_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// Export orders the rows of a table without a primary key by all its
// columns, NULLs first, on both dialects alike.
func TestExportOrdersNullsAlikeOnBothDialects(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := &fake{manifest: manifest("loose", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_bag.sql": `CREATE TABLE loose__bag (a INTEGER, b TEXT);
INSERT INTO loose__bag (a, b) VALUES (2, 'x'), (NULL, 'y'), (1, NULL), (1, 'z');`})}
		m := e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "loose").State, status(t, m, "loose").Reason)
		var out bytes.Buffer
		require.NoError(t, m.Export(ctx, "loose", &out))
		require.Equal(t, `{"table":"bag","row":{"a":null,"b":"y"}}
{"table":"bag","row":{"a":1,"b":null}}
{"table":"bag","row":{"a":1,"b":"z"}}
{"table":"bag","row":{"a":2,"b":"x"}}
`, out.String())
	})
}
