// Package crawlerdetect is github.com/x-way/crawlerdetect v0.2.28 (MIT,
// see LICENSE): the JayBizzle/Crawler-Detect pattern lists in crawlers.go
// and exclusions.go, copied unchanged, with the same matching, but compiled
// on first use instead of in the package's init.
//
// Why a copy: the upstream package compiles its expression of over a
// thousand patterns in init, 3.4 MB of heap in every process that links it.
// The probe workers are this same binary re-executed, so each of them paid
// that too without ever classifying a User-Agent; and a hub whose QR pages
// are not visited never needs it either.
//
// To update: copy crawlers.go and exclusions.go from a newer upstream
// release (its update_data.sh makes them), changing only the package line and the two variable names.
package crawlerdetect

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

var compiledFlag atomic.Bool

// compiled builds the two expressions once, as upstream's New does.
var compiled = sync.OnceValues(func() (crawlers, exclusions *regexp.Regexp) {
	compiledFlag.Store(true)
	return regexp.MustCompile("(?i)(" + strings.Join(crawlerPatterns, "|") + ")"),
		regexp.MustCompile("(?i)(" + strings.Join(exclusionPatterns, "|") + ")")
})

// IsCrawler reports whether a User-Agent is a crawler: the exclusions are
// cut out of it first, then the crawler patterns matched (as upstream).
func IsCrawler(input string) bool {
	crawlers, exclusions := compiled()
	return crawlers.MatchString(exclusions.ReplaceAllString(strings.TrimSpace(input), ""))
}

// compiledYet reports whether IsCrawler has compiled the expressions (for
// the test that nothing is compiled at start-up).
func compiledYet() bool { return compiledFlag.Load() }
