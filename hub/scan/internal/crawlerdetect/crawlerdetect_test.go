package crawlerdetect

import "testing"

// Nothing is compiled until the first IsCrawler: that is the point of the
// copy (the probe workers link this package and never classify). It must
// run before any other test of this package calls IsCrawler.
func TestCompiledOnFirstUse(t *testing.T) {
	if compiledYet() {
		t.Fatal("the expressions were compiled before any IsCrawler")
	}
	IsCrawler("Mozilla/5.0")
	if !compiledYet() {
		t.Fatal("IsCrawler did not compile the expressions")
	}
}

// Agents from upstream's testdata (crawlers.txt and devices.txt): the copy
// matches as upstream does, exclusions included (YandexSearch is a person,
// Yandex's bot is not; the re2 workaround of update_data.sh).
func TestIsCrawler(t *testing.T) {
	for ua, want := range map[string]bool{
		"TinEye-bot/0.51 (see http://www.tineye.com/crawler.html)":                                             true,
		"yacybot (webportal-global; x86 Windows Vista 6.0; java 1.7.0_25; Europe/en) http://yacy.net/bot.html": true,
		"Mozilla/5.0 (compatible; linkdexbot/2.1; +http://www.linkdex.com/about/bots/)":                        true,
		"Mozilla/5.0 (Windows NT 5.1) BrokenLinkCheck.com/1.1":                                                 true,
		"CopperEgg/RevealUptime/Singapore(aws)":                                                                true,
		"HAAARTLAND http client":                                                                               true,
		"aria2/1.18.8":                                                                                         true,
		"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)":                                     true,
		"  Mozilla/5.0 (compatible; YandexBot/3.0)  ":                                                          true,
		"Mozilla/5.0 (Linux; Android 4.4; Nexus 7/JSS15R) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/34.0.1847.114 Mobile Safari/537.36": false,
		"Mozilla/5.0 (X11; Linux x86_64; rv:10.0.12) Gecko/20130104 Firefox/10.0.12":                                                        false,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 10_0_1 like Mac OS X) AppleWebKit/602.1.50 (KHTML, like Gecko) Mobile/14A403 (4298164384)":      false,
		"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) YaBrowser/21.3.4 YandexSearch/21.3 Mobile Safari/537.36": false,
	} {
		if got := IsCrawler(ua); got != want {
			t.Errorf("IsCrawler(%q) = %v, want %v", ua, got, want)
		}
	}
}
