package dev.kiln.executor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The last lines a child JVM printed, for the error that says why it did not start. Its standard output and error
 * each pass through a pump thread that forwards every byte at once to the driver's stream of the same kind (as an
 * inherited stream would) and keeps the last {@value #LINES} lines of both here, each cut to
 * {@value #LINE_BYTES} bytes: a child that prints without end, or one line without end, costs a bounded amount of
 * memory. Lines are escaped ({@link LogText#line}) when read, since they come from another process.
 *
 * <p>Thread-safe.
 */
final class OutputTail {

    /** Lines kept. */
    static final int LINES = 20;
    /** Bytes kept of one line. */
    static final int LINE_BYTES = 400;

    private final ArrayDeque<String> lines = new ArrayDeque<>(LINES);
    private final List<Thread> pumps = new ArrayList<>(2);
    private long dropped;

    /**
     * Starts a daemon thread that copies {@code from} to {@code to} until {@code from} ends, keeping its lines.
     *
     * @param name the thread's name
     * @param from a child's output
     * @param to   where its bytes go on (the driver's {@code System.out} or {@code System.err})
     */
    void pump(String name, InputStream from, OutputStream to) {
        Thread t = Thread.ofPlatform().daemon().name(name).unstarted(() -> copy(from, to));
        synchronized (this) {
            pumps.add(t);
        }
        t.start();
    }

    private void copy(InputStream from, OutputStream to) {
        byte[] buffer = new byte[8192];
        ByteArrayOutputStream line = new ByteArrayOutputStream(LINE_BYTES);
        boolean cut = false;
        try (from) {
            for (int n; (n = from.read(buffer)) >= 0; ) {
                try {
                    to.write(buffer, 0, n);
                    to.flush();
                } catch (IOException ignored) {
                    // the driver's stream is closed: keep the tail all the same
                }
                for (int i = 0; i < n; i++) {
                    byte b = buffer[i];
                    if (b == '\n') {
                        add(line, cut);
                        line.reset();
                        cut = false;
                    } else if (line.size() < LINE_BYTES) {
                        line.write(b);
                    } else {
                        cut = true;
                    }
                }
            }
        } catch (IOException ignored) {
            // the pipe broke: the child is gone, and what it said is kept
        }
        if (line.size() > 0) {
            add(line, cut);
        }
    }

    private synchronized void add(ByteArrayOutputStream line, boolean cut) {
        String s = line.toString(StandardCharsets.UTF_8);
        if (s.endsWith("\r")) {
            s = s.substring(0, s.length() - 1);
        }
        if (lines.size() == LINES) {
            lines.removeFirst();
            dropped++;
        }
        lines.addLast(cut ? s + "..." : s);
    }

    /**
     * Waits for the pumps to reach the end of the child's output (it has exited or was killed).
     *
     * @param millis the most to wait, in all
     * @throws InterruptedException if interrupted
     */
    void await(long millis) throws InterruptedException {
        List<Thread> all;
        synchronized (this) {
            all = List.copyOf(pumps);
        }
        long deadline = System.nanoTime() + millis * 1_000_000L;
        for (Thread t : all) {
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left > 0) {
                t.join(left);
            }
        }
    }

    /** @return the kept lines, oldest first, as printed (not escaped) */
    synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    /**
     * @return the kept lines escaped, each on a line of its own and indented, after a count of earlier lines
     *         left out; or a line saying the child printed nothing
     */
    synchronized String text() {
        if (lines.isEmpty()) {
            return "\n    (it printed nothing)";
        }
        StringBuilder b = new StringBuilder();
        if (dropped > 0) {
            b.append("\n    (").append(dropped).append(" earlier lines left out)");
        }
        for (String l : lines) {
            b.append("\n    | ").append(LogText.line(l));
        }
        return b.toString();
    }
}
