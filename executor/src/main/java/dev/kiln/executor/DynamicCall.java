package dev.kiln.executor;

import dev.kiln.ActorDiedException;
import dev.kiln.ActorTaskException;
import dev.kiln.graph.MethodRef;

import java.io.Serializable;
import java.util.concurrent.CompletableFuture;

/**
 * One call of the dynamic per-call path ({@code Kiln.call}): a mailbox message carrying the
 * method, its arguments and the future it completes. Run on the actor's thread.
 *
 * @param <R> the result type
 */
public final class DynamicCall<R> implements Runnable {

    private final CompletableFuture<R> future = new CompletableFuture<>();
    private final Serializable function;
    private final int arity;
    private final Object instance;
    private final String actor;
    private final long number;
    private final Object[] args;

    /**
     * @param function the {@code Method0..Method8} to call
     * @param arity    its argument count
     * @param instance the actor
     * @param actor    the actor's name
     * @param number   the call's number on this actor, for error messages
     * @param args     the arguments
     */
    public DynamicCall(Serializable function, int arity, Object instance, String actor, long number, Object[] args) {
        this.function = function;
        this.arity = arity;
        this.instance = instance;
        this.actor = actor;
        this.number = number;
        this.args = args;
    }

    /** @return the future the call completes */
    public CompletableFuture<R> future() {
        return future;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void run() {
        try {
            future.complete((R) MethodRef.invoke(function, arity, instance, args));
        } catch (VirtualMachineError fatal) {
            future.completeExceptionally(new ActorDiedException("actor " + actor + " died: " + fatal, fatal));
            throw fatal;
        } catch (Throwable t) {
            future.completeExceptionally(new ActorTaskException(actor, MethodRef.of(function, arity).displayName(),
                    number, t));
        }
    }

    /**
     * Fails the call because the actor ended before running it.
     *
     * @param actorName the actor
     * @param death     what it died of, or null if it was stopped
     */
    public void abandon(String actorName, Throwable death) {
        future.completeExceptionally(death == null
                ? new ActorDiedException("actor " + actorName + " was stopped (its Kiln closed) before running this call")
                : new ActorDiedException("actor " + actorName + " died of " + death + " before running this call", death));
    }
}
