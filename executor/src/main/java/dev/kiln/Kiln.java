package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.compiler.IdleMode;
import dev.kiln.compiler.Topology;
import dev.kiln.compiler.Topology.ActorPlacement;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.ControlPlane;
import dev.kiln.executor.DynamicCall;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.Message;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.WorkerProcess;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Method0;
import dev.kiln.graph.Method1;
import dev.kiln.graph.Method2;
import dev.kiln.graph.Method3;
import dev.kiln.graph.Method4;
import dev.kiln.graph.Method5;
import dev.kiln.graph.Method6;
import dev.kiln.graph.Method7;
import dev.kiln.graph.Method8;
import dev.kiln.graph.Node;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;

import java.io.IOException;
import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A Kiln runtime: it hosts actors, compiles graphs of their method calls and runs them.
 *
 * <pre>{@code
 * try (Kiln kiln = Kiln.local()) {
 *     ActorRef<Doubler> d = kiln.actor(Doubler::new);
 *     InputNode<Integer> in = Graph.input();
 *     try (CompiledGraph<Integer, Integer> g = kiln.compile(d.bind(Doubler::twice, in))) {
 *         int y = g.execute(21).get();   // 42
 *     }
 * }
 * }</pre>
 *
 * <p>Actors live in this JVM by default; {@link ActorOptions#process()} puts one in a worker JVM
 * that the runtime starts (same {@code java}, class path and JVM flags) and ends with
 * {@link #close()}. Values cross JVMs through shared memory: natively for primitives,
 * strings, byte arrays, object arrays and tensors, and for the classes registered in
 * {@link KilnOptions#register}.
 *
 * <p>Thread-safe. {@link #close()} closes every graph compiled here and ends every actor and
 * every worker JVM.
 */
public final class Kiln implements AutoCloseable {

    /** Actor ids are unique across runtimes, so an actor of another runtime is never mistaken for one of ours. */
    private static final AtomicInteger ACTOR_IDS = new AtomicInteger();
    private static final AtomicLong KILN_IDS = new AtomicLong();
    private static final long STOP_TIMEOUT_MS = 5_000;
    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final Object[] NO_ARGS = {};

    private final String name = "kiln-" + KILN_IDS.incrementAndGet();
    private final KilnOptions options;
    private final ValueCodec codec = new ValueCodec();
    private final Map<Integer, ActorThread> actors = new ConcurrentHashMap<>();
    private final Map<Integer, RemoteActor> remoteActors = new ConcurrentHashMap<>();
    private final Map<String, WorkerProcess> workers = new ConcurrentHashMap<>();
    /** Started with the first worker JVM; guarded by {@code this}. */
    private ControlPlane plane;
    private final Map<String, Integer> names = new ConcurrentHashMap<>();
    private final Map<CompiledGraph<?, ?>, Boolean> graphs = new ConcurrentHashMap<>();
    private final Map<Integer, AtomicLong> callCounters = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private Kiln(KilnOptions options) {
        this.options = options;
        for (Class<?> type : options.types()) {
            codec.register(type);
        }
        try {
            // Files of runtimes that died without closing: nothing else would ever remove them.
            if (java.nio.file.Files.isDirectory(options.shmDirectory())) {
                ShmChannel.removeStale(options.shmDirectory());
            }
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, () -> "cannot remove stale shared-memory files in "
                    + options.shmDirectory() + ": " + e);
        }
    }

    /**
     * Creates the embedded runtime with default options: actors live in this JVM, each on a
     * thread of its own, unless placed in worker JVMs; no GPU needed.
     *
     * @return a new runtime; close it when done
     */
    public static Kiln local() {
        return new Kiln(KilnOptions.defaults());
    }

    /**
     * Creates the embedded runtime with options (registered classes, directories, worker JVM flags).
     * Removes the shared-memory files that runtimes of dead processes left behind.
     *
     * @param options the runtime's options
     * @return a new runtime; close it when done
     */
    public static Kiln local(KilnOptions options) {
        return new Kiln(options);
    }

    /** @return the runtime's options */
    public KilnOptions options() {
        return options;
    }

    ValueCodec codec() {
        return codec;
    }

    /**
     * Creates an actor with default options: in this JVM, on its own thread.
     *
     * @param factory creates the actor on its thread, e.g. {@code Model::new}
     * @param <A>     the actor's class
     * @return a handle to bind the actor's methods into graphs or call them
     * @throws ActorCreationException if the factory throws
     */
    public <A> ActorRef<A> actor(ActorFactory<A> factory) {
        return actor(factory, ActorOptions.defaults());
    }

    /**
     * Creates an actor. Blocks until the factory has returned on the actor's thread.
     *
     * @param factory creates the actor on its thread
     * @param options where and how to host it
     * @param <A>     the actor's class
     * @return a handle to bind the actor's methods into graphs or call them
     * @throws ActorCreationException   if the factory throws
     * @throws IllegalArgumentException if the name is taken
     * @throws IllegalStateException    if this runtime is closed
     */
    public <A> ActorRef<A> actor(ActorFactory<A> factory, ActorOptions options) {
        ensureOpen();
        if (options.onJoinedWorker()) {
            throw new IllegalArgumentException("no joined worker matches host " + options.host() + " and labels "
                    + options.labels() + ": no worker has joined " + name);
        }
        if (options.hasGpu()) {
            throw new UnsupportedOperationException("actor placement on GPU " + options.gpu()
                    + " is not supported by this executor yet");
        }
        int id = ACTOR_IDS.incrementAndGet();
        String actorName = options.name();
        if (actorName != null && names.putIfAbsent(actorName, id) != null) {
            throw new IllegalArgumentException("an actor named '" + actorName + "' exists in " + name
                    + "; actor names must be unique");
        }
        if (options.inWorker()) {
            try {
                return remoteActor(factory, options, id, actorName);
            } catch (RuntimeException e) {
                if (actorName != null) {
                    names.remove(actorName);
                }
                throw e;
            }
        }
        ActorThread thread = new ActorThread(id, actorName != null ? actorName : "actor-" + id, () -> {
            try {
                return factory.create();
            } catch (Exception e) {
                throw new FactoryFailure(e);
            }
        });
        Object instance;
        try {
            instance = thread.created().get();
        } catch (ExecutionException e) {
            if (actorName != null) {
                names.remove(actorName);
            }
            Throwable cause = e.getCause() instanceof FactoryFailure f ? f.getCause() : e.getCause();
            throw new ActorCreationException("the factory of actor " + thread.name() + " threw " + cause, cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            thread.stop(STOP_TIMEOUT_MS);
            throw new ActorCreationException("interrupted while actor " + thread.name() + " was being created", e);
        }
        if (instance == null) {
            thread.stop(STOP_TIMEOUT_MS);
            throw new ActorCreationException("the factory of actor " + thread.name() + " returned null");
        }
        String finalName = actorName != null ? actorName : ActorThread.defaultName(instance.getClass(), id);
        if (actorName == null) {
            thread.rename(finalName);
            names.put(finalName, id);
        }
        actors.put(id, thread);
        if (closed) {
            thread.stop(STOP_TIMEOUT_MS);
            throw new IllegalStateException(name + " was closed while actor " + finalName + " was being created");
        }
        return new ActorRef<>(id, finalName, instance.getClass(), this);
    }

    /** Creates an actor in a worker JVM, starting the JVM if it is the first actor to name it. */
    private <A> ActorRef<A> remoteActor(ActorFactory<A> factory, ActorOptions options, int id, String actorName) {
        String processName = options.processName().isEmpty() ? "worker-" + id : options.processName();
        byte[] factoryBytes;
        try {
            factoryBytes = Codecs.lambdaBytes(factory, codec);
        } catch (IllegalArgumentException e) {
            throw new ActorCreationException("the factory of actor " + (actorName != null ? actorName : "#" + id)
                    + " cannot be sent to worker JVM " + processName + ": " + e.getMessage(), e);
        }
        WorkerProcess worker;
        try {
            worker = worker(processName);
        } catch (IllegalStateException e) {
            throw new ActorCreationException(e.getMessage(), e);
        }
        Message reply = awaitReply(worker, worker.request(Message.CREATE_ACTOR,
                m -> m.putInt(id).putString(actorName).putBytes(factoryBytes)), "create actor #" + id);
        if (reply.getInt() != Message.OK) {
            String error = reply.getString();
            throw new ActorCreationException("the factory of actor " + (actorName != null ? actorName : "#" + id)
                    + " in worker JVM " + processName + " threw " + error, new RemoteActorException(
                    new RemoteError(actorName != null ? actorName : "#" + id, "<init>", 0, error, null,
                            String.valueOf(reply.getString()))));
        }
        String className = reply.getString();
        String finalName = reply.getString();
        Class<?> type;
        try {
            type = Class.forName(className, false, factory.getClass().getClassLoader());
        } catch (ClassNotFoundException e) {
            type = Object.class; // a class only the worker can load: bind still resolves methods by reference
        }
        if (actorName == null) {
            names.put(finalName, id);
        }
        remoteActors.put(id, new RemoteActor(id, finalName, worker));
        return new ActorRef<>(id, finalName, type, this);
    }

    /** The worker JVM called {@code processName}, started (with the control plane) if it does not run. */
    private synchronized WorkerProcess worker(String processName) {
        ensureOpen();
        WorkerProcess w = workers.get(processName);
        if (w != null && w.death() == null) {
            return w;
        }
        if (plane == null) {
            plane = ControlPlane.start(options.runDirectory(), name);
        }
        w = WorkerProcess.start(processName, plane, new WorkerEvents(), options.workerJvmOptions(),
                options.workerStartTimeout());
        workers.put(processName, w);
        if (!options.types().isEmpty()) {
            WorkerProcess started = w;
            Message reply = awaitReply(w, w.request(Message.REGISTER, m -> {
                m.putInt(options.types().size());
                options.types().forEach(t -> m.putString(t.getName()));
            }), "register classes");
            if (reply.getInt() != Message.OK) {
                started.kill();
                throw new IllegalStateException("worker JVM " + processName + " cannot register "
                        + options.types() + ": " + reply.getString());
            }
        }
        return w;
    }

    private Message awaitReply(WorkerProcess worker, CompletableFuture<Message> reply, String what) {
        Duration timeout = options.workerStartTimeout();
        try {
            return reply.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new ActorDiedException("worker JVM " + worker.name() + " could not " + what + ": "
                    + e.getCause().getMessage(), e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("worker JVM " + worker.name() + " did not " + what + " within " + timeout
                    + " (KilnOptions.workerStartTimeout)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for worker JVM " + worker.name(), e);
        }
    }

    /** Fails the graphs and actors of worker JVMs that die. */
    private final class WorkerEvents implements WorkerProcess.Listener {
        @Override
        public void loopDied(WorkerProcess worker, long graph, int actor, String cause) {
            RemoteActor r = remoteActors.get(actor);
            String who = "actor " + (r != null ? r.name() : "#" + actor) + " in worker JVM " + worker.name();
            if (r != null) {
                r.died(who + " died of " + cause);
            }
            for (CompiledGraph<?, ?> g : graphs.keySet()) {
                if (g.id() == graph) {
                    g.remoteDied(who + " died of " + cause);
                }
            }
        }

        @Override
        public void workerDied(WorkerProcess worker, String why) {
            for (RemoteActor r : remoteActors.values()) {
                if (r.worker() == worker) {
                    r.died(why);
                }
            }
            for (CompiledGraph<?, ?> g : graphs.keySet()) {
                if (g.uses(worker)) {
                    g.remoteDied(why);
                }
            }
        }
    }

    /**
     * Compiles a graph with default options.
     *
     * @param output the result node, or {@code Graph.outputs(...)}
     * @param <I>    the input type
     * @param <O>    the result type
     * @return the compiled graph, running; close it when done
     * @throws GraphCompileException naming the node at fault and the fix
     */
    public <I, O> CompiledGraph<I, O> compile(Node<O> output) {
        return compile(output, CompileOptions.defaults());
    }

    /**
     * Compiles a graph: validates it, plans channels and schedules, allocates the channels and
     * starts each actor's loop. Each actor may be in one open graph at a time.
     *
     * @param output  the result node, or {@code Graph.outputs(...)}
     * @param options compile options
     * @param <I>     the input type
     * @param <O>     the result type
     * @return the compiled graph, running; close it when done
     * @throws GraphCompileException naming the node (or actor) at fault and the fix
     * @throws IllegalStateException if this runtime is closed
     */
    public <I, O> CompiledGraph<I, O> compile(Node<O> output, CompileOptions options) {
        ensureOpen();
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        actors.forEach((id, a) -> placements.put(id, ActorPlacement.IN_DRIVER));
        remoteActors.forEach((id, r) -> placements.put(id, new ActorPlacement("localhost", r.worker().name())));
        ExecutionPlan plan = GraphCompiler.compile(output, new Topology(ActorPlacement.IN_DRIVER, placements), options);
        Map<Integer, ActorThread> local = new HashMap<>();
        List<RemoteActor> remote = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            ActorThread a = actors.get(s.actor());
            if (a != null) {
                local.put(s.actor(), a);
            } else {
                remote.add(remoteActors.get(s.actor()));
            }
        }
        // The graph starts nothing until start(): build it first, so the actors are held by the
        // graph itself and a failed compile can free exactly the ones it took.
        CompiledGraph<I, O> graph = new CompiledGraph<>(this, plan, options, local, remote, codec,
                this.options.shmDirectory(), this.options.workerStartTimeout());
        List<ActorThread> held = new ArrayList<>();
        List<RemoteActor> heldRemote = new ArrayList<>();
        try {
            for (ActorSchedule s : plan.schedules()) {
                ActorThread a = local.get(s.actor());
                if (a == null) {
                    continue;
                }
                if (a.death() != null || !a.isAlive()) {
                    throw new GraphCompileException(a.name(), "actor " + a.name() + " is dead ("
                            + (a.death() != null ? "it died of " + a.death() : "its thread ended")
                            + "); create a new actor and bind its methods instead");
                }
                Object holder = a.hold(graph);
                if (holder != null) {
                    throw new GraphCompileException(a.name(), "actor " + a.name() + " is in " + holder
                            + ", which is still open (or still finishing a method after close); an actor serves one "
                            + "graph at a time: close that graph first, or create another actor");
                }
                held.add(a);
            }
            for (RemoteActor r : remote) {
                if (r.death() != null) {
                    throw new GraphCompileException(r.name(), "actor " + r.name() + " is dead (" + r.death()
                            + "); create a new actor and bind its methods instead");
                }
                Object holder = r.hold(graph);
                if (holder != null) {
                    throw new GraphCompileException(r.name(), "actor " + r.name() + " is in " + holder
                            + ", which is still open; an actor serves one graph at a time: close that graph first, "
                            + "or create another actor");
                }
                heldRemote.add(r);
            }
            claimNodes(output, graph);
            graphs.put(graph, Boolean.TRUE);
            if (closed) {
                throw new IllegalStateException(name + " was closed during compile");
            }
            graph.start();
            warnIfOversubscribed(graph, options);
            return graph;
        } catch (RuntimeException e) {
            for (ActorThread a : held) {
                a.release(graph);
            }
            for (RemoteActor r : heldRemote) {
                r.release(graph);
            }
            graphs.remove(graph);
            throw e;
        }
    }

    /** SPIN with more spinning threads than CPUs turns every hand-off into a wait for the scheduler. */
    private static void warnIfOversubscribed(CompiledGraph<?, ?> graph, CompileOptions options) {
        int threads = graph.plan().schedules().size() + 1;
        int cpus = Runtime.getRuntime().availableProcessors();
        if (options.idle() == IdleMode.SPIN && threads > cpus) {
            LOG.log(System.Logger.Level.WARNING, () -> graph + " spins " + threads + " threads ("
                    + (threads - 1) + " actors and the driver) on " + cpus + " CPUs: with IdleMode.SPIN a waiting "
                    + "thread holds its CPU, so hand-offs wait for the scheduler (milliseconds). Use IdleMode.BACKOFF "
                    + "(the default) unless every actor has a core of its own.");
        }
    }

    private static void claimNodes(Node<?> output, Object graph) {
        List<Node<?>> work = new ArrayList<>(List.of(output));
        while (!work.isEmpty()) {
            Node<?> n = work.removeLast();
            Object previous = n.claim(graph);
            if (previous != null && previous != graph) {
                throw new GraphCompileException(n.label(), "this node was compiled into " + previous
                        + " meanwhile; a node can be compiled once: bind the calls again to build a new graph");
            }
            if (previous == null) {
                for (Object arg : n.args()) {
                    if (arg instanceof Node<?> up) {
                        work.add(up);
                    }
                }
            }
        }
    }

    /**
     * Calls a method through the dynamic per-call path: a mailbox message and a future per call.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param <A>    the actor's class
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, R> CompletableFuture<R> call(ActorRef<A> actor, Method0<A, R> method) {
        return dispatch(actor, method, 0, NO_ARGS);
    }

    /**
     * Calls a one-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     the argument
     * @param <A>    the actor's class
     * @param <P1>   the parameter type
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, R> CompletableFuture<R> call(ActorRef<A> actor, Method1<A, P1, R> method, P1 a1) {
        return dispatch(actor, method, 1, new Object[] {a1});
    }

    /**
     * Calls a two-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param <A>    the actor's class
     * @param <P1>   the first parameter type
     * @param <P2>   the second parameter type
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, R> CompletableFuture<R> call(ActorRef<A> actor, Method2<A, P1, P2, R> method, P1 a1, P2 a2) {
        return dispatch(actor, method, 2, new Object[] {a1, a2});
    }

    /**
     * Calls a three-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param <A>    the actor's class
     * @param <P1>   the first parameter type
     * @param <P2>   the second parameter type
     * @param <P3>   the third parameter type
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, R> CompletableFuture<R> call(ActorRef<A> actor, Method3<A, P1, P2, P3, R> method,
                                                        P1 a1, P2 a2, P3 a3) {
        return dispatch(actor, method, 3, new Object[] {a1, a2, a3});
    }

    /**
     * Calls a 4-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param a4     argument 4
     * @param <A>    the actor's class
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, P4, R> CompletableFuture<R> call(ActorRef<A> actor, Method4<A, P1, P2, P3, P4, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4) {
        return dispatch(actor, method, 4, new Object[] {a1, a2, a3, a4});
    }

    /**
     * Calls a 5-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param a4     argument 4
     * @param a5     argument 5
     * @param <A>    the actor's class
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, P4, P5, R> CompletableFuture<R> call(ActorRef<A> actor, Method5<A, P1, P2, P3, P4, P5, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5) {
        return dispatch(actor, method, 5, new Object[] {a1, a2, a3, a4, a5});
    }

    /**
     * Calls a 6-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param a4     argument 4
     * @param a5     argument 5
     * @param a6     argument 6
     * @param <A>    the actor's class
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, P4, P5, P6, R> CompletableFuture<R> call(ActorRef<A> actor, Method6<A, P1, P2, P3, P4, P5, P6, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5, P6 a6) {
        return dispatch(actor, method, 6, new Object[] {a1, a2, a3, a4, a5, a6});
    }

    /**
     * Calls a 7-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param a4     argument 4
     * @param a5     argument 5
     * @param a6     argument 6
     * @param a7     argument 7
     * @param <A>    the actor's class
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <P7>   parameter type 7
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, P4, P5, P6, P7, R> CompletableFuture<R> call(ActorRef<A> actor, Method7<A, P1, P2, P3, P4, P5, P6, P7, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5, P6 a6, P7 a7) {
        return dispatch(actor, method, 7, new Object[] {a1, a2, a3, a4, a5, a6, a7});
    }

    /**
     * Calls a 8-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; it must not be held by an open graph
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param a3     argument 3
     * @param a4     argument 4
     * @param a5     argument 5
     * @param a6     argument 6
     * @param a7     argument 7
     * @param a8     argument 8
     * @param <A>    the actor's class
     * @param <P1>   parameter type 1
     * @param <P2>   parameter type 2
     * @param <P3>   parameter type 3
     * @param <P4>   parameter type 4
     * @param <P5>   parameter type 5
     * @param <P6>   parameter type 6
     * @param <P7>   parameter type 7
     * @param <P8>   parameter type 8
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws
     * @throws IllegalStateException if an open graph holds the actor
     */
    public <A, P1, P2, P3, P4, P5, P6, P7, P8, R> CompletableFuture<R> call(ActorRef<A> actor, Method8<A, P1, P2, P3, P4, P5, P6, P7, P8, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5, P6 a6, P7 a7, P8 a8) {
        return dispatch(actor, method, 8, new Object[] {a1, a2, a3, a4, a5, a6, a7, a8});
    }

    private <R> CompletableFuture<R> dispatch(ActorRef<?> ref, Serializable method, int arity, Object[] args) {
        if (ref.owner() == this && remoteActors.containsKey(ref.id())) {
            return dispatchRemote(remoteActors.get(ref.id()), method, arity, args);
        }
        ActorThread a = hosted(ref);
        Object holder = a.holder();
        // A dead actor stays held by the graph it died in; the call fails below with ActorDiedException.
        if (holder != null && a.death() == null) {
            throw new IllegalStateException("actor " + a.name() + " is held by " + holder + "; kiln.call works on "
                    + "actors no open graph holds: close that graph, or create another actor for dynamic calls");
        }
        long number = callCounters.computeIfAbsent(ref.id(), k -> new AtomicLong()).getAndIncrement();
        DynamicCall<R> call = new DynamicCall<>(method, arity, a.created().getNow(null), a.name(), number, args);
        if (!a.submit(call)) {
            call.abandon(a.name(), a.death());
        }
        return call.future();
    }

    /** A dynamic call to an actor in a worker JVM: the method and arguments travel in a control message. */
    @SuppressWarnings("unchecked")
    private <R> CompletableFuture<R> dispatchRemote(RemoteActor actor, Serializable method, int arity, Object[] args) {
        Object holder = actor.holder();
        if (holder != null && actor.death() == null) {
            throw new IllegalStateException("actor " + actor.name() + " is held by " + holder + "; kiln.call works on "
                    + "actors no open graph holds: close that graph, or create another actor for dynamic calls");
        }
        CompletableFuture<R> result = new CompletableFuture<>();
        String death = actor.death();
        if (death != null) {
            result.completeExceptionally(new ActorDiedException("actor " + actor.name() + " is dead: " + death));
            return result;
        }
        long number = callCounters.computeIfAbsent(actor.id(), k -> new AtomicLong()).getAndIncrement();
        byte[] function = Codecs.lambdaBytes(method, codec);
        byte[] arguments;
        try {
            arguments = Codecs.valueBytes(args, codec);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot send the arguments of a call to actor " + actor.name()
                    + " in worker JVM " + actor.worker().name() + ": " + GraphLoop.explain(e), e);
        }
        String methodName = dev.kiln.graph.MethodRef.of(method, arity).displayName();
        actor.worker().request(Message.CALL, m -> m.putInt(actor.id()).putLong(number).putBytes(function)
                .putInt(arity).putBytes(arguments)).whenComplete((reply, error) -> {
            if (error != null) {
                result.completeExceptionally(new ActorDiedException("actor " + actor.name() + " died before call #"
                        + number + " returned: " + error.getMessage(), error));
                return;
            }
            try {
                switch (reply.getInt()) {
                    case Message.OK -> result.complete((R) Codecs.value(reply.getBytes(), codec));
                    case Message.TASK_ERROR -> {
                        String m = reply.getString();
                        result.completeExceptionally(new ActorTaskException(actor.name(), m, number,
                                new RemoteActorException(new RemoteError(actor.name(), m, number, reply.getString(),
                                        reply.getString(), reply.getString()))));
                    }
                    case Message.DIED -> result.completeExceptionally(new ActorDiedException("actor " + actor.name()
                            + " died before running call #" + number + ": " + reply.getString()));
                    default -> result.completeExceptionally(new ActorTaskException(actor.name(), methodName, number,
                            new IllegalStateException(reply.getString())));
                }
            } catch (RuntimeException e) {
                result.completeExceptionally(new ActorTaskException(actor.name(), methodName, number, e));
            }
        });
        return result;
    }

    private ActorThread hosted(ActorRef<?> ref) {
        ActorThread a = ref.owner() == this ? actors.get(ref.id()) : null;
        if (a == null) {
            throw new IllegalArgumentException("actor " + ref.name() + " does not belong to " + name);
        }
        return a;
    }

    void forget(CompiledGraph<?, ?> graph) {
        graphs.remove(graph);
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(name + " is closed; create a new Kiln");
        }
    }

    /**
     * Closes every graph compiled here (their unfinished futures fail with
     * {@link GraphClosedException}), ends every actor thread and every worker JVM (killing one
     * that does not exit in time); pending dynamic calls fail with {@link ActorDiedException}. Returns in bounded time (a few seconds at most when an
     * actor method does not return). Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (CompiledGraph<?, ?> g : List.copyOf(graphs.keySet())) {
            g.close();
        }
        for (ActorThread a : actors.values()) {
            a.requestStop();
        }
        long deadline = System.nanoTime() + STOP_TIMEOUT_MS * 1_000_000;
        for (ActorThread a : actors.values()) {
            a.stop(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
        }
        for (WorkerProcess w : workers.values()) {
            w.shutdown(Duration.ofNanos(Math.max(1_000_000, deadline - System.nanoTime())));
        }
        synchronized (this) {
            if (plane != null) {
                plane.close();
            }
        }
    }

    @Override
    public String toString() {
        return name + String.format(Locale.ROOT, "(%d actors, %d graphs%s)", actors.size(), graphs.size(),
                closed ? ", closed" : "");
    }

    /** Carries a checked factory exception through the {@code Supplier} of {@link ActorThread}. */
    private static final class FactoryFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        FactoryFailure(Exception cause) {
            super(cause);
        }
    }
}
