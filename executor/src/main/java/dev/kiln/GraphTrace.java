package dev.kiln;

import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.TraceWindow;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * A trace of a window of a compiled graph's executions, started by {@link CompiledGraph#startTrace(int)}: per-actor
 * timelines like Ray's, written as Chrome trace JSON that Perfetto ({@code ui.perfetto.dev}) and
 * {@code chrome://tracing} open. One track shows each execution from {@code execute} to the collection of its
 * result; one track per actor in the driver's JVM shows each method call, named by the method, with its execution's
 * sequence number. Actors in worker JVMs have no track.
 *
 * <pre>{@code
 * try (GraphTrace trace = graph.startTrace(1_000)) {
 *     for (int i = 0; i < 1_000; i++) graph.execute(i).get();
 *     trace.writeTo(Path.of("kiln-trace.json"));
 * }
 * }</pre>
 *
 * <p>Memory is bounded: 20 bytes per span, allocated as tracks start. Thread-safe.
 */
public final class GraphTrace implements AutoCloseable {

    private final GraphProbe probe;
    private final TraceWindow window;

    GraphTrace(GraphProbe probe, TraceWindow window) {
        this.probe = probe;
        this.window = window;
    }

    /** @return how many executions the trace records at most */
    public int executions() {
        return window.size();
    }

    /** @return how many executions it recorded so far */
    public int recorded() {
        return window.executions().size();
    }

    /**
     * Waits until the trace holds all its executions (someone must execute them).
     *
     * @param timeout how long to wait
     * @return whether it is complete
     */
    public boolean await(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!window.executions().isFull()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(1_000_000);
        }
        return true;
    }

    /**
     * Stops recording and writes what was recorded to {@code file} as Chrome trace JSON (replacing it).
     *
     * @param file where to write, e.g. {@code kiln-trace.json}
     * @throws IOException if the file cannot be written
     */
    public void writeTo(Path file) throws IOException {
        close();
        try (Writer out = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            window.write(out);
        }
    }

    /** Stops recording; the spans recorded so far can still be written. Idempotent. */
    @Override
    public void close() {
        probe.stopTrace(window);
    }
}
