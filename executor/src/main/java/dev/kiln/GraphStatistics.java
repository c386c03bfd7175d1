package dev.kiln;

import java.util.List;

/**
 * A snapshot of a compiled graph's statistics ({@link CompiledGraph#statistics()}), kept while
 * {@code CompileOptions.statistics} is on (the default). Counts run from the graph's compilation, across restarts.
 * Per-method figures cover the actors in the driver's JVM; an actor in a worker JVM is not listed (its methods' time
 * shows in the graph's latency, and in a JFR recording of the worker).
 *
 * @param graph       the graph's name
 * @param submitted   executions started by {@code execute}
 * @param executions  executions that finished with a result or an actor's exception (not those a close or a
 *                    restart abandoned)
 * @param failures    of those, the ones in which an actor method threw
 * @param inFlight    executions submitted and not yet collected, at most {@code maxInflight}
 * @param maxInflight the graph's {@code CompileOptions.maxInflight}
 * @param latency     the time from {@code execute} to the result's collection, timed for the first and then one in 8
 *                    of the finished executions, each timed one standing for the untimed ones before it (its
 *                    {@code count()} lags {@code executions} by the untimed ones since the last timed one)
 * @param actors      the graph's actors in the driver's JVM
 */
public record GraphStatistics(String graph, long submitted, long executions, long failures, int inFlight,
                              int maxInflight, LatencyHistogram latency, List<ActorStatistics> actors) {

    /** @param actors copied */
    public GraphStatistics {
        actors = List.copyOf(actors);
    }

    /**
     * One actor's part.
     *
     * @param actor   the actor's name
     * @param queued  executions submitted to the graph's current deployment that this actor has not finished yet:
     *                its queue depth, in executions
     * @param methods its methods in the graph, in schedule order
     */
    public record ActorStatistics(String actor, long queued, List<MethodStatistics> methods) {

        /** @param methods copied */
        public ActorStatistics {
            methods = List.copyOf(methods);
        }
    }

    /**
     * One actor method's calls in the graph (a method bound twice in one actor counts both).
     *
     * @param method   the method, e.g. {@code Model.forward}
     * @param calls    how many times it was called (not counting executions where an upstream method had failed and
     *                 it was skipped)
     * @param failures how many of those calls threw
     * @param latency  the duration on the actor's thread, timed for the first and then one in 8 of the calls, each
     *                 timed one standing for the untimed ones before it
     */
    public record MethodStatistics(String method, long calls, long failures, LatencyHistogram latency) {
    }
}
