package dev.kiln.executor;

import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * Which joins the driver takes on: at most {@link #perSource} in progress per source address and
 * {@link #total} in all, and a source whose join failed (a wrong secret, a malformed step, a timeout) waits
 * before its next one, twice as long after each failure up to {@link #maxBackoffNs}; a join that succeeds
 * forgets the source's failures. The table of sources is bounded too. Control thread only.
 */
final class Admission {

    private final int perSource;
    private final int total;
    private final long baseBackoffNs;
    private final long maxBackoffNs;
    private final int maxSources;
    private final Map<String, Source> sources = new HashMap<>();
    private int pending;

    /**
     * @param perSource     joins in progress per source
     * @param total         joins in progress in all
     * @param baseBackoffNs the wait after a first failure
     * @param maxBackoffNs  the longest wait
     * @param maxSources    sources remembered at once
     */
    Admission(int perSource, int total, long baseBackoffNs, long maxBackoffNs, int maxSources) {
        this.perSource = perSource;
        this.total = total;
        this.baseBackoffNs = baseBackoffNs;
        this.maxBackoffNs = maxBackoffNs;
        this.maxSources = maxSources;
    }

    private static final class Source {
        int pending;
        long backoffNs;
        long notBefore;
    }

    /**
     * Takes on a join from {@code source} if it may start now.
     *
     * @param source the sender's address (or, over IPC, the child's name)
     * @param now    {@link System#nanoTime}
     * @return null when it started (call {@link #finished} later), else why not
     */
    String start(String source, long now) {
        Source s = sources.get(source);
        if (s == null) {
            if (sources.size() >= maxSources) {
                prune(now);
            }
            if (sources.size() >= maxSources) {
                return maxSources + " sources have joins in progress or are waiting after failed joins";
            }
            s = new Source();
            sources.put(source, s);
        }
        if (now - s.notBefore < 0) {
            return "its last join failed: it may try again in " + Math.max(1, (s.notBefore - now) / 1_000_000) + " ms";
        }
        if (s.pending >= perSource) {
            return perSource + " joins from it are in progress already";
        }
        if (pending >= total) {
            return total + " joins are in progress already";
        }
        s.pending++;
        pending++;
        return null;
    }

    /**
     * Ends a join that {@link #start} took on.
     *
     * @param source    its source
     * @param succeeded whether the worker joined
     * @param now       {@link System#nanoTime}
     */
    void finished(String source, boolean succeeded, long now) {
        Source s = sources.get(source);
        if (s == null || s.pending == 0) {
            return;
        }
        s.pending--;
        pending--;
        if (succeeded) {
            s.backoffNs = 0;
            s.notBefore = now;
        } else {
            s.backoffNs = s.backoffNs == 0 ? baseBackoffNs : Math.min(maxBackoffNs, s.backoffNs * 2);
            s.notBefore = now + s.backoffNs;
        }
        if (s.pending == 0 && s.backoffNs == 0) {
            sources.remove(source);
        }
    }

    /** @return joins in progress */
    int pending() {
        return pending;
    }

    private void prune(long now) {
        for (Iterator<Source> it = sources.values().iterator(); it.hasNext(); ) {
            Source s = it.next();
            if (s.pending == 0 && now - s.notBefore >= 0) {
                it.remove();
            }
        }
    }
}
