package dev.kiln.graph;

import java.io.Serializable;

/**
 * An actor method taking 0 arguments, usually written as a method reference such as {@code Model::forward}.
 *
 * <p>The interface is {@link Serializable} so that Kiln can resolve the method by name
 * ({@link java.lang.invoke.SerializedLambda}) to check argument types at compile time and to
 * call it in another JVM.
 *
 * @param <A> the actor type
 * @param <R> the result type
 */
@FunctionalInterface
public interface Method0<A, R> extends Serializable {
    /**
     * Calls the method on {@code actor}.
     *
     * @param actor the actor instance, on the actor's own thread
     * @return the method's result
     * @throws Exception whatever the method throws; Kiln turns it into an {@code ActorTaskException}
     */
    R apply(A actor) throws Exception;
}
