package dev.kiln.graph;

import dev.kiln.graph.internal.GraphInternals;

/**
 * A handle to an actor: an object living on its own thread (or in another JVM) whose methods
 * are bound into graphs. Obtained from {@code Kiln.actor(...)}; user code cannot create one.
 *
 * <p>Arguments to {@code bind} are nodes of the same graph or plain constants (any other
 * object, including {@code null}); constants are passed as they are to every execution.
 * Argument types are checked when the graph is compiled. Thread-safe.
 *
 * <p>When a graph that restarts after actor deaths ({@code ActorDeathPolicy.RESTART}) recreates this
 * actor, the new incarnation takes the same id and name: this ref, and the nodes bound with it, reach
 * it. Its state is the fresh state its factory made.
 *
 * @param <A> the actor's class
 */
public final class ActorRef<A> {

    private final int id;
    private final String name;
    private final Class<?> type;
    private final Object owner;

    static {
        GraphInternals.install(new GraphInternals.Bridge() {
            @Override
            public <T> ActorRef<T> actorRef(int id, String name, Class<?> type, Object owner) {
                return new ActorRef<>(id, name, type, owner);
            }

            @Override
            public Object claim(Node<?> node, Object owner) {
                return node.claim(owner);
            }
        });
    }

    /** Created by the runtime that hosts the actor, through {@link GraphInternals#actorRef}. */
    private ActorRef(int id, String name, Class<?> type, Object owner) {
        this.id = id;
        this.name = name;
        this.type = type;
        this.owner = owner;
    }

    /** {@return the actor's id, unique within its runtime} */
    public int id() {
        return id;
    }

    /** {@return the actor's name, unique within its runtime} */
    public String name() {
        return name;
    }

    /** {@return the actor instance's class} */
    public Class<?> type() {
        return type;
    }

    /** {@return the runtime hosting the actor} */
    public Object owner() {
        return owner;
    }

    /**
     * Binds a call of a method without arguments.
     *
     * @param method the method, e.g. {@code Counter::next}
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <R> Node<R> bind(Method0<A, R> method) {
        return call(method, 0);
    }

    /**
     * Binds a call of a one-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   a node or a constant
     * @param <P1>   the parameter type
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws IllegalArgumentException if the arguments come from two different {@code Graph.input()} nodes
     */
    public <P1, R> Node<R> bind(Method1<A, P1, R> method, Object arg1) {
        return call(method, 1, arg1);
    }

    /**
     * Binds a call of a two-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param <P1>   the first parameter type
     * @param <P2>   the second parameter type
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws IllegalArgumentException if the arguments come from two different {@code Graph.input()} nodes
     */
    public <P1, P2, R> Node<R> bind(Method2<A, P1, P2, R> method, Object arg1, Object arg2) {
        return call(method, 2, arg1, arg2);
    }

    /**
     * Binds a call of a three-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param <P1>   the first parameter type
     * @param <P2>   the second parameter type
     * @param <P3>   the third parameter type
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws IllegalArgumentException if the arguments come from two different {@code Graph.input()} nodes
     */
    public <P1, P2, P3, R> Node<R> bind(Method3<A, P1, P2, P3, R> method, Object arg1, Object arg2, Object arg3) {
        return call(method, 3, arg1, arg2, arg3);
    }

    /**
     * Binds a call of a 4-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param arg4   a node or a constant
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <P1, P2, P3, P4, R> Node<R> bind(Method4<A, P1, P2, P3, P4, R> method, Object arg1, Object arg2, Object arg3, Object arg4) {
        return call(method, 4, arg1, arg2, arg3, arg4);
    }

    /**
     * Binds a call of a 5-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param arg4   a node or a constant
     * @param arg5   a node or a constant
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <P1, P2, P3, P4, P5, R> Node<R> bind(Method5<A, P1, P2, P3, P4, P5, R> method, Object arg1, Object arg2, Object arg3, Object arg4, Object arg5) {
        return call(method, 5, arg1, arg2, arg3, arg4, arg5);
    }

    /**
     * Binds a call of a 6-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param arg4   a node or a constant
     * @param arg5   a node or a constant
     * @param arg6   a node or a constant
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <P1, P2, P3, P4, P5, P6, R> Node<R> bind(Method6<A, P1, P2, P3, P4, P5, P6, R> method, Object arg1, Object arg2, Object arg3, Object arg4, Object arg5, Object arg6) {
        return call(method, 6, arg1, arg2, arg3, arg4, arg5, arg6);
    }

    /**
     * Binds a call of a 7-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param arg4   a node or a constant
     * @param arg5   a node or a constant
     * @param arg6   a node or a constant
     * @param arg7   a node or a constant
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <P7>   parameter type 7
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <P1, P2, P3, P4, P5, P6, P7, R> Node<R> bind(Method7<A, P1, P2, P3, P4, P5, P6, P7, R> method, Object arg1, Object arg2, Object arg3, Object arg4, Object arg5, Object arg6, Object arg7) {
        return call(method, 7, arg1, arg2, arg3, arg4, arg5, arg6, arg7);
    }

    /**
     * Binds a call of a 8-argument method.
     *
     * @param method the method
     * @param arg1   a node or a constant
     * @param arg2   a node or a constant
     * @param arg3   a node or a constant
     * @param arg4   a node or a constant
     * @param arg5   a node or a constant
     * @param arg6   a node or a constant
     * @param arg7   a node or a constant
     * @param arg8   a node or a constant
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <P7>   parameter type 7
     * @param <P8>   parameter type 8
     * @param <R>    the result type
     * @return the node of the call's result
     */
    public <P1, P2, P3, P4, P5, P6, P7, P8, R> Node<R> bind(Method8<A, P1, P2, P3, P4, P5, P6, P7, P8, R> method, Object arg1, Object arg2, Object arg3, Object arg4, Object arg5, Object arg6, Object arg7, Object arg8) {
        return call(method, 8, arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8);
    }

    private <R> Node<R> call(java.io.Serializable method, int arity, Object... args) {
        if (method == null) {
            throw new NullPointerException("method");
        }
        return new Node<>(Node.Kind.CALL, Node.inputOf(args), -1, this, MethodRef.of(method, arity), args);
    }

    @Override
    public String toString() {
        return "ActorRef(" + name + ")";
    }
}
