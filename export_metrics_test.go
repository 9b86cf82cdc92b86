package pluginhost

import "time"

// BucketOf exposes the histogram bucketing to the external tests.
func BucketOf(d time.Duration) int { return bucketOf(d) }
