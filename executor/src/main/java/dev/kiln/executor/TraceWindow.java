package dev.kiln.executor;

import java.io.IOException;
import java.io.Writer;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * A bounded recording of a window of a graph's executions, written as Chrome trace JSON (which Perfetto and
 * {@code chrome://tracing} open): one track for the executions as the driver saw them (from {@code execute} to the
 * result's collection), and one track per actor in the driver's JVM with a span per method call. Memory is
 * allocated when a track is created: 20 bytes per span, {@code executions} spans per compute step of the actor.
 *
 * <p>Each track has one writer: the collecting thread for the executions, an actor's thread for its track.
 * {@link #write} may run on any thread; it shows the spans whose writes it sees.
 */
public final class TraceWindow {

    /** The largest window. */
    public static final int MAX_EXECUTIONS = 100_000;
    private static final VarHandle COUNT;

    static {
        try {
            COUNT = MethodHandles.lookup().findVarHandle(Track.class, "count", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final String graph;
    private final int executions;
    private final long origin = System.nanoTime();
    private final Track driver;
    private final List<Track> actors = new ArrayList<>();

    /**
     * @param graph      the graph's name
     * @param executions how many executions to record, 1 to {@link #MAX_EXECUTIONS}
     * @throws IllegalArgumentException if {@code executions} is out of range
     */
    public TraceWindow(String graph, int executions) {
        if (executions < 1 || executions > MAX_EXECUTIONS) {
            throw new IllegalArgumentException("a trace records 1 to " + MAX_EXECUTIONS + " executions, got "
                    + executions);
        }
        this.graph = graph;
        this.executions = executions;
        this.driver = new Track("executions", executions);
    }

    /** One thread's spans. */
    public static final class Track {
        private final String name;
        private final long[] begin;
        private final long[] end;
        private final String[] what;
        private final long[] sequence;
        private volatile int count;

        private Track(String name, int capacity) {
            this.name = name;
            this.begin = new long[capacity];
            this.end = new long[capacity];
            this.what = new String[capacity];
            this.sequence = new long[capacity];
        }

        /**
         * Adds a span, unless the track is full; its writer only.
         *
         * @param name     what ran
         * @param sequence the execution
         * @param from     when it began ({@code System.nanoTime()})
         * @param to       when it ended
         * @return false if the track is full
         */
        public boolean add(String name, long sequence, long from, long to) {
            int n = (int) COUNT.getOpaque(this);
            if (n == begin.length) {
                return false;
            }
            begin[n] = from;
            end[n] = to;
            what[n] = name;
            this.sequence[n] = sequence;
            COUNT.setRelease(this, n + 1);
            return true;
        }

        /** @return the spans recorded so far */
        public int size() {
            return count;
        }

        /** @return whether the track holds as many spans as it can */
        public boolean isFull() {
            return count == begin.length;
        }
    }

    /** @return the track of the executions, written by the graph's collecting thread */
    public Track executions() {
        return driver;
    }

    /** @return how many executions the window records */
    public int size() {
        return executions;
    }

    /**
     * The track of an actor, created on first use with room for {@code steps} spans per execution.
     *
     * @param actor the actor's name
     * @param steps its compute steps per execution
     * @return its track
     */
    public synchronized Track actor(String actor, int steps) {
        for (Track t : actors) {
            if (t.name.equals(actor)) {
                return t;
            }
        }
        Track t = new Track(actor, Math.max(1, steps) * executions);
        actors.add(t);
        return t;
    }

    /**
     * Writes the window as Chrome trace JSON: one process (the graph), one thread (track) for the executions and one
     * per actor, each named by a {@code thread_name} metadata event, and a complete ({@code "ph":"X"}) event per span,
     * in microseconds from the window's start.
     *
     * @param out where to write
     * @throws IOException if writing fails
     */
    public void write(Writer out) throws IOException {
        List<Track> tracks = new ArrayList<>();
        tracks.add(driver);
        synchronized (this) {
            tracks.addAll(actors);
        }
        out.write("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
        out.write("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":");
        string(out, "kiln " + graph);
        out.write("}}");
        for (int tid = 0; tid < tracks.size(); tid++) {
            Track t = tracks.get(tid);
            out.write(",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" + tid + ",\"args\":{\"name\":");
            string(out, tid == 0 ? "executions (driver)" : "actor " + t.name);
            out.write("}}");
            out.write(",\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":" + tid
                    + ",\"args\":{\"sort_index\":" + tid + "}}");
            int n = t.size();
            for (int i = 0; i < n; i++) {
                out.write(",\n{\"name\":");
                string(out, t.what[i]);
                out.write(",\"cat\":\"" + (tid == 0 ? "execution" : "compute") + "\",\"ph\":\"X\",\"ts\":"
                        + micros(Math.max(0, t.begin[i] - origin)) + ",\"dur\":" + micros(Math.max(0, t.end[i] - t.begin[i]))
                        + ",\"pid\":1,\"tid\":" + tid + ",\"args\":{\"sequence\":" + t.sequence[i] + "}}");
            }
        }
        out.write("\n]}\n");
    }

    private static String micros(long nanos) {
        return (nanos / 1000) + "." + String.format("%03d", Math.abs(nanos % 1000));
    }

    /** Writes {@code s} as a JSON string. */
    private static void string(Writer out, String s) throws IOException {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20 || c == 0x7f || Character.isSurrogate(c)) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        out.write(b.append('"').toString());
    }
}
