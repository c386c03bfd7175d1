package dev.kiln.executor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A compiled graph's instrumentation in the driver's JVM, kept across its restarts: the recorders of its actors'
 * methods (when statistics are on), the loops that run its actors here now, and the trace window being recorded,
 * if any. The loops of actors in worker JVMs have none. Loops register at construction; the rest may be read from
 * any thread.
 */
public final class GraphProbe {

    private final String graph;
    private final boolean statistics;
    private final Map<String, Actor> actors = new LinkedHashMap<>();
    private volatile TraceWindow trace;

    /**
     * @param graph      the graph's name
     * @param statistics whether to record latencies of the actors' methods
     */
    public GraphProbe(String graph, boolean statistics) {
        this.graph = graph;
        this.statistics = statistics;
    }

    /**
     * What is known of one actor of the graph in this JVM.
     *
     * @param name    the actor's name
     * @param methods the recorder of each of its methods, by display name, in schedule order (empty when statistics
     *                are off)
     * @param loop    the loop that runs it in the live deployment: {@code loop[0]}
     */
    public record Actor(String name, Map<String, LatencyRecorder> methods, GraphLoop[] loop) {
    }

    /** @return the graph's name */
    public String graph() {
        return graph;
    }

    /** @return whether the methods' latencies are recorded */
    public boolean statistics() {
        return statistics;
    }

    /**
     * Registers a loop of the graph and returns the recorder of each of its compute steps' methods.
     *
     * @param actor   the actor's name
     * @param loop    its loop
     * @param methods the display name of each compute step's method
     * @return a recorder per method (the same one for a method computed twice), or nulls when statistics are off
     */
    synchronized LatencyRecorder[] attach(String actor, GraphLoop loop, String[] methods) {
        Actor a = actors.computeIfAbsent(actor, n -> new Actor(n, new LinkedHashMap<>(), new GraphLoop[1]));
        a.loop()[0] = loop;
        LatencyRecorder[] recorders = new LatencyRecorder[methods.length];
        for (int i = 0; i < methods.length; i++) {
            if (statistics && methods[i] != null) {
                recorders[i] = a.methods().computeIfAbsent(methods[i], m -> new LatencyRecorder());
            }
        }
        return recorders;
    }

    /** @return the actors of the graph in this JVM, in the order they registered; a copy */
    public synchronized List<Actor> actors() {
        List<Actor> copy = new ArrayList<>();
        for (Actor a : actors.values()) {
            copy.add(new Actor(a.name(), Map.copyOf(a.methods()), a.loop().clone()));
        }
        return copy;
    }

    /** @return the trace window being recorded, or null */
    public TraceWindow trace() {
        return trace;
    }

    /**
     * Starts recording into {@code window}.
     *
     * @param window the window
     * @return false if another window is being recorded
     */
    public synchronized boolean startTrace(TraceWindow window) {
        if (trace != null) {
            return false;
        }
        trace = window;
        return true;
    }

    /**
     * Stops recording into {@code window}, if it is the one being recorded.
     *
     * @param window the window
     */
    public synchronized void stopTrace(TraceWindow window) {
        if (trace == window) {
            trace = null;
        }
    }
}
