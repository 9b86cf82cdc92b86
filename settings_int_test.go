package pluginhost_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// Int of a number that is not a whole number within int64 is an error,
// never a value made up by the conversion: a stored 1e19 once read as
// -9223372036854775808.
func TestSettingsIntRefusesWhatIsNotAnInt64(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.config()
		cfg.CoreSettings = []pluginhost.Setting{{Key: "n", Type: pluginhost.NumberType, Default: 7}}
		m := e.start(cfg)
		s := m.Settings()

		tests := []struct {
			stored float64
			want   int64
			ok     bool
		}{
			{7, 7, true},
			{-3, -3, true},
			{0, 0, true},
			{1 << 53, 1 << 53, true},
			{-(1 << 63), math.MinInt64, true},
			{1e19, 0, false},
			{-1e19, 0, false},
			{1 << 63, 0, false}, // one past MaxInt64
			{2.75, 0, false},
			{-0.5, 0, false},
			{math.MaxFloat64, 0, false},
			{math.SmallestNonzeroFloat64, 0, false},
		}
		for _, tc := range tests {
			require.NoError(t, s.Set(ctx, "n", tc.stored))
			n, err := s.Int("n")
			if tc.ok {
				require.NoError(t, err, "%v", tc.stored)
				require.Equal(t, tc.want, n)
				continue
			}
			require.ErrorIs(t, err, pluginhost.ErrSettingType, "%v", tc.stored)
			require.ErrorContains(t, err, `setting "n"`)
			require.ErrorContains(t, err, "int64")
			require.Zero(t, n)
			f, err := s.Number("n")
			require.NoError(t, err)
			require.Equal(t, tc.stored, f, "Number reads it as it is")
		}

		// Read back from the database by another Manager, too.
		require.NoError(t, s.Set(ctx, "n", 1e19))
		cfg = e.config()
		cfg.CoreSettings = []pluginhost.Setting{{Key: "n", Type: pluginhost.NumberType, Default: 7}}
		other := e.start(cfg)
		_, err := other.Settings().Int("n")
		require.ErrorIs(t, err, pluginhost.ErrSettingType)
		require.ErrorContains(t, err, "1e+19")
	})
}
