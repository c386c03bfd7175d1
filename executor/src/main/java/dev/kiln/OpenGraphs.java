package dev.kiln;

import dev.kiln.executor.RemoteHost;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The graphs of one runtime that are open: what the runtime closes when it closes, and tells when a worker reports
 * a death. Thread-safe: graphs are added by compiling threads, removed by the threads that close them, and told of
 * deaths on the control plane's threads.
 */
final class OpenGraphs {

    private final Map<CompiledGraph<?, ?>, Boolean> graphs = new ConcurrentHashMap<>();

    /** @param graph a graph being opened */
    void add(CompiledGraph<?, ?> graph) {
        graphs.put(graph, Boolean.TRUE);
    }

    /** @param graph a graph that closed, or failed to open */
    void remove(CompiledGraph<?, ?> graph) {
        graphs.remove(graph);
    }

    /**
     * A worker reported that a deployment lost an actor or a peer: the graph that runs (or starts) it acts on it.
     *
     * @param deploymentId the deployment's id
     * @param why          what happened
     */
    void reported(long deploymentId, String why) {
        for (CompiledGraph<?, ?> g : graphs.keySet()) {
            g.reported(deploymentId, why);
        }
    }

    /**
     * A worker JVM ended: the graphs with actors there act on it.
     *
     * @param worker the worker
     * @param why    why, naming it
     */
    void workerDied(RemoteHost worker, String why) {
        for (CompiledGraph<?, ?> g : graphs.keySet()) {
            g.workerDied(worker, why);
        }
    }

    /** Closes every open graph; each removes itself. */
    void closeAll() {
        for (CompiledGraph<?, ?> g : List.copyOf(graphs.keySet())) {
            g.close();
        }
    }

    /** @return how many graphs are open */
    int size() {
        return graphs.size();
    }
}
