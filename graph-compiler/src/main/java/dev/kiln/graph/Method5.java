package dev.kiln.graph;

import java.io.Serializable;

/**
 * An actor method taking 5 arguments, usually written as a method reference such as {@code Model::forward}.
 *
 * <p>The interface is {@link Serializable} so that Kiln can resolve the method by name
 * ({@link java.lang.invoke.SerializedLambda}) to check argument types at compile time and to
 * call it in another JVM.
 *
 * @param <A> the actor type
 * @param <P1> type of argument 1
 * @param <P2> type of argument 2
 * @param <P3> type of argument 3
 * @param <P4> type of argument 4
 * @param <P5> type of argument 5
 * @param <R> the result type
 */
@FunctionalInterface
public interface Method5<A, P1, P2, P3, P4, P5, R> extends Serializable {
    /**
     * Calls the method on {@code actor}.
     *
     * @param actor the actor instance, on the actor's own thread
     * @param p1 argument 1
     * @param p2 argument 2
     * @param p3 argument 3
     * @param p4 argument 4
     * @param p5 argument 5
     * @return the method's result
     * @throws Exception whatever the method throws; Kiln turns it into an {@code ActorTaskException}
     */
    R apply(A actor, P1 p1, P2 p2, P3 p3, P4 p4, P5 p5) throws Exception;
}
