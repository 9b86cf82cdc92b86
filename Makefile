# The everyday commands. CI runs .ci/run, which does what lint, pg and
# bench do here, with the race detector on.

GO ?= go
# The PostgreSQL server the pg target runs the suite on.
PG_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
# The staticcheck CI pins; "make tools" installs it.
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(or $(shell command -v staticcheck 2>/dev/null),$(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: test race pg bench lint golden tools ci

# The tests, on SQLite (and on PostgreSQL too when PLUGINHOST_TEST_POSTGRES_URL is set).
test:
	$(GO) test ./...

# The tests under the race detector, none of them cached.
race:
	$(GO) test -race -count=1 ./...

# The whole suite on SQLite and PostgreSQL; an unreachable server is a failure.
pg:
	PLUGINHOST_TEST_POSTGRES_URL='$(PG_URL)' PLUGINHOST_REQUIRE_POSTGRES=1 $(GO) test -race -count=1 ./...

# Every benchmark, no tests.
bench:
	$(GO) test -run '^$$' -bench . ./...

# gofmt, go vet and staticcheck (configured in staticcheck.conf).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Rewrites the golden DDL in testdata/ddl from the generated DDL; review the diff.
golden:
	$(GO) test ./internal/sqlgen -run TestGoldenDDL -update

# Installs the pinned staticcheck into GOBIN or $(GO) env GOPATH/bin.
tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# What CI runs.
ci:
	./.ci/run
