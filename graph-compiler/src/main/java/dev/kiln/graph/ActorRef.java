package dev.kiln.graph;

import dev.kiln.graph.internal.GraphInternals;

/**
 * A handle to an actor: an object living on its own thread (or in another JVM), whose methods run
 * one at a time and are bound into graphs (a graph may run them on a thread the actor shares with others of the
 * graph: {@code CompileOptions.actorThreads}). Obtained from {@code Kiln.actor(...)}; user code cannot create one.
 *
 * <p>Arguments to {@code bind} are nodes: results of other calls, the graph's input (or its components), and
 * constants ({@link Graph#constant(Object)}), whose value is passed as it is to every execution. javac checks
 * each argument's type against the method's parameter (a {@code Node<? extends P>}); {@code Kiln.compile}
 * checks again with the classes the methods declare (an erased or raw type javac let through). Methods of up to
 * 8 parameters. Thread-safe.
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
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, R> Node<R> bind(Method1<A, P1, R> method, Node<? extends P1> arg1) {
        return call(method, 1, arg1);
    }

    /**
     * Binds a call of a two-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, R> Node<R> bind(Method2<A, P1, P2, R> method, Node<? extends P1> arg1, Node<? extends P2> arg2) {
        return call(method, 2, arg1, arg2);
    }

    /**
     * Binds a call of a three-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, R> Node<R> bind(Method3<A, P1, P2, P3, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3) {
        return call(method, 3, arg1, arg2, arg3);
    }

    /**
     * Binds a call of a 4-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param arg4   the node of argument 4 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <P4>   the type of parameter 4
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, P4, R> Node<R> bind(Method4<A, P1, P2, P3, P4, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3,
                              Node<? extends P4> arg4) {
        return call(method, 4, arg1, arg2, arg3, arg4);
    }

    /**
     * Binds a call of a 5-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param arg4   the node of argument 4 (a call's result, an input, or {@link Graph#constant})
     * @param arg5   the node of argument 5 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <P4>   the type of parameter 4
     * @param <P5>   the type of parameter 5
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, P4, P5, R> Node<R> bind(Method5<A, P1, P2, P3, P4, P5, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3,
                              Node<? extends P4> arg4, Node<? extends P5> arg5) {
        return call(method, 5, arg1, arg2, arg3, arg4, arg5);
    }

    /**
     * Binds a call of a 6-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param arg4   the node of argument 4 (a call's result, an input, or {@link Graph#constant})
     * @param arg5   the node of argument 5 (a call's result, an input, or {@link Graph#constant})
     * @param arg6   the node of argument 6 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <P4>   the type of parameter 4
     * @param <P5>   the type of parameter 5
     * @param <P6>   the type of parameter 6
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, P4, P5, P6, R> Node<R> bind(Method6<A, P1, P2, P3, P4, P5, P6, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3,
                              Node<? extends P4> arg4, Node<? extends P5> arg5, Node<? extends P6> arg6) {
        return call(method, 6, arg1, arg2, arg3, arg4, arg5, arg6);
    }

    /**
     * Binds a call of a 7-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param arg4   the node of argument 4 (a call's result, an input, or {@link Graph#constant})
     * @param arg5   the node of argument 5 (a call's result, an input, or {@link Graph#constant})
     * @param arg6   the node of argument 6 (a call's result, an input, or {@link Graph#constant})
     * @param arg7   the node of argument 7 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <P4>   the type of parameter 4
     * @param <P5>   the type of parameter 5
     * @param <P6>   the type of parameter 6
     * @param <P7>   the type of parameter 7
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, P4, P5, P6, P7, R> Node<R> bind(Method7<A, P1, P2, P3, P4, P5, P6, P7, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3,
                              Node<? extends P4> arg4, Node<? extends P5> arg5, Node<? extends P6> arg6,
                              Node<? extends P7> arg7) {
        return call(method, 7, arg1, arg2, arg3, arg4, arg5, arg6, arg7);
    }

    /**
     * Binds a call of an 8-argument method.
     *
     * @param method the method, e.g. {@code Model::forward}
     * @param arg1   the node of argument 1 (a call's result, an input, or {@link Graph#constant})
     * @param arg2   the node of argument 2 (a call's result, an input, or {@link Graph#constant})
     * @param arg3   the node of argument 3 (a call's result, an input, or {@link Graph#constant})
     * @param arg4   the node of argument 4 (a call's result, an input, or {@link Graph#constant})
     * @param arg5   the node of argument 5 (a call's result, an input, or {@link Graph#constant})
     * @param arg6   the node of argument 6 (a call's result, an input, or {@link Graph#constant})
     * @param arg7   the node of argument 7 (a call's result, an input, or {@link Graph#constant})
     * @param arg8   the node of argument 8 (a call's result, an input, or {@link Graph#constant})
     * @param <P1>   the type of parameter 1
     * @param <P2>   the type of parameter 2
     * @param <P3>   the type of parameter 3
     * @param <P4>   the type of parameter 4
     * @param <P5>   the type of parameter 5
     * @param <P6>   the type of parameter 6
     * @param <P7>   the type of parameter 7
     * @param <P8>   the type of parameter 8
     * @param <R>    the result type
     * @return the node of the call's result
     * @throws NullPointerException     if an argument is null (pass {@code Graph.constant(null)} for null)
     * @throws IllegalArgumentException if the arguments come from two different input nodes
     */
    public <P1, P2, P3, P4, P5, P6, P7, P8, R> Node<R> bind(Method8<A, P1, P2, P3, P4, P5, P6, P7, P8, R> method,
                              Node<? extends P1> arg1, Node<? extends P2> arg2, Node<? extends P3> arg3,
                              Node<? extends P4> arg4, Node<? extends P5> arg5, Node<? extends P6> arg6,
                              Node<? extends P7> arg7, Node<? extends P8> arg8) {
        return call(method, 8, arg1, arg2, arg3, arg4, arg5, arg6, arg7, arg8);
    }

    private <R> Node<R> call(java.io.Serializable method, int arity, Node<?>... args) {
        if (method == null) {
            throw new NullPointerException("method");
        }
        Object[] values = new Object[args.length];
        for (int i = 0; i < args.length; i++) {
            Node<?> arg = args[i];
            if (arg == null) {
                throw new NullPointerException("argument " + (i + 1) + " of bind is null; pass a node, or "
                        + "Graph.constant(null) for a null argument");
            }
            values[i] = arg.kind() == Node.Kind.CONSTANT ? arg.args().getFirst() : arg;
        }
        return new Node<>(Node.Kind.CALL, Node.inputOf(values), -1, this, MethodRef.of(method, arity), values);
    }

    @Override
    public String toString() {
        return "ActorRef(" + name + ")";
    }
}
