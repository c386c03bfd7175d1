package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;

import java.util.ArrayList;
import java.util.List;

/**
 * Which graphs hold an actor. Several graphs may hold one actor at once, each running its own loop on the thread
 * that runs the actor (one after the other, in each duty cycle), unless one of them holds it exclusively: a graph
 * that runs the actor on another actor's thread (a guest of a carrier, which must not also run it on its own), or
 * one that recreates its actors when one dies ({@code ActorDeathPolicy.RESTART}, whose new deployment must not
 * share the actor with a loop of the one it replaces).
 *
 * <p>Thread-safe: {@link #hold} and {@link #release} (compile and close) take the object's lock; the reads do not.
 */
public final class Holders {

    private volatile List<Object> graphs = List.of();
    /** Whether the one holder holds exclusively; guarded by this. */
    private boolean exclusive;

    /**
     * @param schedule the actor's schedule in a graph's plan
     * @param options  the graph's options
     * @return whether that graph needs the actor to itself: it runs it on a carrier's thread, or it restarts its actors
     */
    public static boolean exclusive(ActorSchedule schedule, CompileOptions options) {
        return schedule.sharesThread() || options.onActorDeath().restart();
    }

    /**
     * Adds a holder.
     *
     * @param graph     the graph (deployment) that takes the actor
     * @param exclusive whether it needs the actor to itself
     * @return null on success, else a graph that holds the actor and is in the way (exclusively, or at all when
     *         {@code exclusive})
     */
    public synchronized Object hold(Object graph, boolean exclusive) {
        List<Object> now = graphs;
        if (!now.isEmpty() && (exclusive || this.exclusive)) {
            return now.getFirst();
        }
        List<Object> next = new ArrayList<>(now);
        next.add(graph);
        this.exclusive = exclusive;
        graphs = List.copyOf(next);
        return null;
    }

    /**
     * Removes a holder, if it holds the actor.
     *
     * @param graph the graph that lets go of the actor
     */
    public synchronized void release(Object graph) {
        List<Object> now = graphs;
        if (now.contains(graph)) {
            List<Object> next = new ArrayList<>(now);
            next.remove(graph);
            graphs = List.copyOf(next);
            exclusive &= !next.isEmpty();
        }
    }

    /**
     * @param graph a graph
     * @return whether it holds the actor
     */
    public boolean contains(Object graph) {
        return graphs.contains(graph);
    }

    /** @return the graph that took the actor first among those that hold it, or null if none does */
    public Object first() {
        List<Object> now = graphs;
        return now.isEmpty() ? null : now.getFirst();
    }

    @Override
    public String toString() {
        return graphs.toString();
    }
}
