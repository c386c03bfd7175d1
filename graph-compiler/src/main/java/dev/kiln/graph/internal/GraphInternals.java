package dev.kiln.graph.internal;

import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Node;

/**
 * What a runtime does to graph objects that user code must not: create an {@link ActorRef} for an actor it hosts
 * and claim the nodes of a graph it compiles. Kiln's own modules only: on the module path this package is exported
 * to {@code dev.kiln.executor} alone (and {@code dev.kiln.transports}, whose tests build actor refs).
 *
 * <p>{@code ActorRef}'s constructor and {@code Node.claim} are not public; {@code ActorRef} hands this class a
 * {@link Bridge} to them when it is initialised. Thread-safe.
 */
public final class GraphInternals {

    /** The non-public operations of {@code dev.kiln.graph}; implemented there, installed once. */
    public interface Bridge {
        /**
         * Creates an actor handle.
         *
         * @param <A>   the actor's class
         * @param id    the actor's id, unique within its runtime
         * @param name  a readable name, unique within its runtime
         * @param type  the actor instance's class
         * @param owner the runtime hosting the actor
         * @return the handle
         */
        <A> ActorRef<A> actorRef(int id, String name, Class<?> type, Object owner);

        /**
         * Marks a node as part of a compiled graph.
         *
         * @param node  the node
         * @param owner the compiled graph
         * @return {@code null} if the node was free, else the graph that already owns it
         */
        Object claim(Node<?> node, Object owner);
    }

    private static volatile Bridge bridge;

    private GraphInternals() {
    }

    /**
     * Installs the bridge; called once, by {@code ActorRef}'s static initialiser.
     *
     * @param b the bridge
     * @throws IllegalStateException if a bridge is installed already
     */
    public static synchronized void install(Bridge b) {
        if (bridge != null) {
            throw new IllegalStateException("the dev.kiln.graph bridge is installed already");
        }
        bridge = b;
    }

    /**
     * Creates an actor handle; for actor hosts (a runtime, a test standing in for one).
     *
     * @param <A>   the actor's class
     * @param id    the actor's id, unique within its runtime
     * @param name  a readable name, unique within its runtime
     * @param type  the actor instance's class
     * @param owner the runtime hosting the actor
     * @return the handle
     */
    public static <A> ActorRef<A> actorRef(int id, String name, Class<?> type, Object owner) {
        return bridge().actorRef(id, name, type, owner);
    }

    /**
     * Marks {@code node} as part of a compiled graph.
     *
     * @param node  the node
     * @param owner the compiled graph
     * @return {@code null} if the node was free, else the graph that already owns it
     */
    public static Object claim(Node<?> node, Object owner) {
        return bridge().claim(node, owner);
    }

    private static Bridge bridge() {
        Bridge b = bridge;
        if (b == null) {
            try { // ActorRef's static initialiser installs the bridge
                Class.forName(ActorRef.class.getName(), true, ActorRef.class.getClassLoader());
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException(e);
            }
            b = bridge;
        }
        return b;
    }
}
