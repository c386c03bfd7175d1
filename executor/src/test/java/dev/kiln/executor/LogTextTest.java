package dev.kiln.executor;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.ResourceBundle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What peers send is logged escaped and bounded, and warnings about peers are rate-limited. */
class LogTextTest {

    @Test
    void controlAndLineBreakingCharactersAreEscapedAndTextIsBounded() {
        assertEquals("'a\\nSEVERE: b\\r\\u001b[31m\\u2028\\u0000\\\\\\''", LogText.quote("a\nSEVERE: b\r\u001b[31m\u2028\u0000\\'"));
        assertEquals("null", LogText.quote(null));
        String quoted = LogText.quote("x".repeat(10_000));
        assertEquals(2 + LogText.MAX_CHARS + "...(9800 more characters)".length(), quoted.length());
        assertTrue(quoted.endsWith("...(9800 more characters)"));
        assertEquals("'h\u00e9llo w\u00f6rld'", LogText.quote("h\u00e9llo w\u00f6rld"), "printable text stays");
    }

    @Test
    void tenThousandWarningsGiveAFewLines() {
        List<String> lines = new ArrayList<>();
        System.Logger log = new System.Logger() {
            @Override
            public String getName() {
                return "test";
            }

            @Override
            public boolean isLoggable(Level level) {
                return true;
            }

            @Override
            public void log(Level level, ResourceBundle bundle, String msg, Throwable thrown) {
                lines.add(msg);
            }

            @Override
            public void log(Level level, ResourceBundle bundle, String format, Object... params) {
                lines.add(format);
            }
        };
        PeerWarnings warnings = new PeerWarnings(log, "kiln-1");
        for (int i = 0; i < 10_000; i++) {
            int n = i;
            warnings.warn(() -> "bad payload " + n);
        }
        assertEquals(PeerWarnings.PER_WINDOW, lines.size());
        assertEquals("kiln-1: bad payload 0", lines.getFirst());
    }
}
