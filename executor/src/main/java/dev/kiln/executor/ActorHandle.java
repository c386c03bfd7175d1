package dev.kiln.executor;

import java.io.Serializable;
import java.util.concurrent.CompletableFuture;

/**
 * The driver's handle on one actor, wherever it lives: {@link ActorThread} for an actor of this JVM,
 * {@link RemoteActor} for one in a worker JVM. The runtime reserves actors for graphs, asks whether they live,
 * runs dynamic calls on them and stops them through this type, without asking which kind it holds.
 *
 * <p>Implementations are thread-safe: every method may be called from any thread.
 */
public sealed interface ActorHandle permits ActorThread, RemoteActor {

    /** {@return the actor's id, unique across runtimes} */
    int id();

    /** {@return the actor's name} */
    String name();

    /**
     * {@return why the actor is dead, as a sentence that names it (it died of an error, its thread or its worker
     *         ended), or null while it lives}
     */
    String deathReason();

    /** {@return the graphs (deployments) that hold the actor} */
    Holders holders();

    /**
     * Reserves the actor for {@code graph}.
     *
     * @param graph     the deployment that takes it
     * @param exclusive whether it needs the actor to itself (see {@link Holders})
     * @return null on success, else a graph that holds the actor and is in the way
     */
    default Object hold(Object graph, boolean exclusive) {
        return holders().hold(graph, exclusive);
    }

    /**
     * Frees the actor from {@code graph}; nothing if another holds it.
     *
     * @param graph what held it
     */
    default void release(Object graph) {
        holders().release(graph);
    }

    /**
     * Runs one dynamic call on the actor ({@code Kiln.call}): on the thread that runs the actor, between two
     * executions of the graphs that hold it.
     *
     * @param method the {@code Method0..Method8} to call
     * @param arity  its argument count
     * @param args   the arguments
     * @param number the call's number on this actor, for messages
     * @param <R>    the result type
     * @return the future of the result; fails with {@link dev.kiln.ActorTaskException} if the method throws, with
     *         {@link dev.kiln.ActorDiedException} if the actor is dead or ends before running the call
     * @throws IllegalArgumentException if the call cannot be sent to the actor's JVM
     */
    <R> CompletableFuture<R> call(Serializable method, int arity, Object[] args, long number);

    /** Asks the actor to end after the method it runs, if any; does not wait. */
    void requestStop();
}
