package dev.kiln.executor;

import java.util.function.Supplier;

/**
 * Warnings about peers, rate-limited: at most {@value #PER_WINDOW} lines per 10-second window; the rest are
 * counted and summed up in one line when the next window opens, so 10,000 bad payloads give a handful of
 * lines. Quote what a peer sent with {@link LogText#quote}. Thread-safe.
 */
public final class PeerWarnings {

    /** Lines allowed per window. */
    public static final int PER_WINDOW = 10;
    private static final long WINDOW_NS = 10_000_000_000L;

    private final System.Logger log;
    private final String who;
    private long windowStart = System.nanoTime();
    private int inWindow;
    private long suppressed;

    /**
     * @param log where to log
     * @param who the side that logs, first on each line (e.g. {@code kiln-1}, {@code worker w-1})
     */
    public PeerWarnings(System.Logger log, String who) {
        this.log = log;
        this.who = who;
    }

    /**
     * Logs a WARNING unless this window's lines are used up.
     *
     * @param text the line; built only when it is logged
     */
    public void warn(Supplier<String> text) {
        long summary;
        boolean log;
        synchronized (this) {
            long now = System.nanoTime();
            summary = 0;
            if (now - windowStart >= WINDOW_NS) {
                summary = suppressed;
                suppressed = 0;
                inWindow = 0;
                windowStart = now;
            }
            log = inWindow < PER_WINDOW;
            if (log) {
                inWindow++;
            } else {
                suppressed++;
            }
        }
        if (summary > 0) {
            long s = summary;
            this.log.log(System.Logger.Level.WARNING, () -> who + ": " + s + " more warnings about peers in the last"
                    + " 10 s were left out (at most " + PER_WINDOW + " per 10 s)");
        }
        if (log) {
            this.log.log(System.Logger.Level.WARNING, () -> who + ": " + text.get());
        }
    }
}
