# villagehub: build, test, benchmark.
#
#   make test    install what the tests need (Debian packages, a cached
#                InfluxDB build), then gofmt, go vet and every test
#   make fuzz    run each fuzz target for FUZZTIME (default 1m)
#   make bench   in-process benchmarks and the end-to-end villagesim bench
#   make release static binaries for linux/amd64, arm64 and armv7 in dist/

GO       ?= go
FUZZTIME ?= 1m
TESTTIMEOUT ?= 20m

.PHONY: all build test deps vet fuzz bench clean release

all: build

build:
	$(GO) build -o villagehub ./cmd/villagehub
	$(GO) build -o villagesim ./cmd/villagesim

deps:
	./scripts/install-deps.sh

vet:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Fuzz targets' seed corpora run as ordinary tests here; `make fuzz` runs
# them for real.
test: deps vet
	$(GO) test -count=1 -timeout $(TESTTIMEOUT) ./...

FUZZ_TARGETS = \
	./hub/ingest:FuzzDecode \
	./hub/ingest:FuzzParseTopic \
	./hub/config:FuzzParse \
	./hub/web:FuzzAPIParams \
	./hub/qrcode:FuzzParseOptions

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./hub/ingest ./hub/state ./hub/store
	$(GO) run ./cmd/villagesim bench

release:
	./scripts/release.sh dist

clean:
	rm -f villagehub villagesim
	rm -rf dist
