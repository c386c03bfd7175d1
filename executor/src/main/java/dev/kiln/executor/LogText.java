package dev.kiln.executor;

/**
 * Text from a peer, made safe to log: control and line-breaking characters (and every other character that is
 * not printable, or could turn a log line around) are escaped as {@code \}{@code uXXXX} or {@code \n}, and the
 * text is cut to a bound with the number of characters left out. So a hostile name or reason cannot forge log
 * lines, drive a terminal or fill the disk. Stateless.
 */
public final class LogText {

    /** Characters kept of one quoted value. */
    public static final int MAX_CHARS = 200;

    private LogText() {
    }

    /**
     * @param text text from a peer, or null
     * @return it escaped and bounded to {@value #MAX_CHARS} characters before escaping, in single quotes
     */
    public static String quote(String text) {
        return text == null ? "null" : escape(text, true);
    }

    /**
     * @param text a line another process printed (its quotes kept as they are), not null
     * @return it escaped as {@link #quote} escapes, bounded the same way, without quotes
     */
    public static String line(String text) {
        return escape(text, false);
    }

    private static String escape(String text, boolean quoted) {
        int n = Math.min(text.length(), MAX_CHARS);
        StringBuilder b = new StringBuilder(n + 16);
        if (quoted) {
            b.append('\'');
        }
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            switch (c) {
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\\' -> b.append("\\\\");
                case '\'' -> b.append(quoted ? "\\'" : "'");
                default -> {
                    if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u2028' || c == '\u2029'
                            || Character.getType(c) == Character.FORMAT || Character.isSurrogate(c)
                            || Character.getType(c) == Character.UNASSIGNED) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        if (quoted) {
            b.append('\'');
        }
        if (text.length() > n) {
            b.append("...(").append(text.length() - n).append(" more characters)");
        }
        return b.toString();
    }
}
