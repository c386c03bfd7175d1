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
import dev.kiln.executor.Gpus;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.JoinedWorker;
import dev.kiln.executor.Message;
import dev.kiln.executor.Peer;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.StaleFiles;
import dev.kiln.executor.ThreadHost;
import dev.kiln.executor.UdpSettings;
import dev.kiln.executor.WorkerClassPath;
import dev.kiln.executor.WorkerProcess;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.InputNode;
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
import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.io.Serializable;
import java.time.Duration;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
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
 * {@link #close()}; {@link ActorOptions#host} and {@link ActorOptions#label} put one on a
 * {@link KilnWorker} that joined from another host (with a {@link KilnOptions#joinSecret}).
 * Values cross JVMs through shared memory on one host and Aeron UDP between hosts: JDK values
 * (primitive arrays, boxed primitives, strings, collections, {@code Optional}s) and tensors as they
 * are, the user's classes once registered in {@link KilnOptions#register}; {@code compile} refuses
 * an edge whose declared type cannot cross.
 *
 * <p>The runtime keeps the factory and options of every actor it created: a graph compiled with
 * {@code CompileOptions.onActorDeath(ActorDeathPolicy.RESTART)} recreates its dead actors from them,
 * under the same ids and names, so their {@link ActorRef}s reach the new incarnations.
 *
 * <p>Thread-safe. {@link #close()} closes every graph compiled here, ends every actor and
 * every child JVM, and shuts down the joined workers (they exit).
 */
public final class Kiln implements AutoCloseable {

    /** Actor ids are unique across runtimes, so an actor of another runtime is never mistaken for one of ours. */
    private static final AtomicInteger ACTOR_IDS = new AtomicInteger();
    private static final AtomicLong KILN_IDS = new AtomicLong();
    private static final long STOP_TIMEOUT_MS = 5_000;
    private static final System.Logger LOG = System.getLogger("dev.kiln");
    private static final Object[] NO_ARGS = {};
    /** Where remote calls' answers are decoded and their futures completed: a virtual thread each. */
    private static final java.util.concurrent.Executor COMPLETIONS = task -> Thread.ofVirtual().name("kiln-call")
            .start(task);
    private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

    private final String name = "kiln-" + KILN_IDS.incrementAndGet();
    private final KilnOptions options;
    private final ValueCodec codec = new ValueCodec();
    /** The actors of this JVM, each on a thread of its own. */
    private final ThreadHost local;
    private final Map<Integer, RemoteActor> remoteActors = new ConcurrentHashMap<>();
    /** The GPU of each actor that uses one, as its host reported it when the actor started. */
    private final Map<Integer, ActorDevice> actorGpus = new ConcurrentHashMap<>();
    /** The GPUs this JVM's actors use: CUDA's, or simulated ones ({@link KilnOptions#simulatedGpus}). */
    private final Gpus gpus;
    /** Child JVMs and joined workers, by name; a dead child stays until replaced, a dead joined worker leaves. */
    private final Map<String, RemoteHost> workers = new ConcurrentHashMap<>();
    private final WorkerEvents events = new WorkerEvents();
    /** Held while a child JVM starts, and while the runtime is marked closed. */
    private final Object childLock = new Object();
    /** Started with the runtime when it accepts workers, else with the first child JVM; guarded by {@code this}. */
    private ControlPlane plane;
    private final Map<String, Integer> names = new ConcurrentHashMap<>();
    private final Map<CompiledGraph<?, ?>, Boolean> graphs = new ConcurrentHashMap<>();
    private final Map<Integer, AtomicLong> callCounters = new ConcurrentHashMap<>();
    /** How each actor was made: a graph that restarts recreates its dead actors from these. */
    private final Map<Integer, ActorSpec> specs = new ConcurrentHashMap<>();
    /** The next free Aeron stream id for a graph's UDP channels; ids are never reused by one runtime. */
    private final AtomicInteger udpStreams = new AtomicInteger(ControlPlane.FIRST_GRAPH_STREAM);
    private volatile boolean closed;

    private Kiln(KilnOptions options) {
        this.options = options;
        for (Class<?> type : options.types()) {
            codec.register(type);
        }
        this.gpus = options.simulatedGpus() != null
                ? Gpus.simulated(options.shmDirectory(), options.hostName(), options.simulatedGpus()) : Gpus.detect();
        this.local = new ThreadHost("driver", () -> new WorkerInfo(options.hostName(), Map.of(),
                Runtime.getRuntime().availableProcessors(), gpus.describe()), gpus, STOP_TIMEOUT_MS);
        // Files of runtimes that died without closing: nothing else would ever remove them.
        StaleFiles.remove(options.runDirectory(), options.shmDirectory());
        if (options.acceptsWorkers()) {
            plane = ControlPlane.start(options.runDirectory(), name, controlSettings(new ControlPlane.Listen(
                    options.listen(), options.joinSecret(), new Joins())));
            LOG.log(System.Logger.Level.INFO, () -> name + " accepts workers on " + plane.endpoint());
        }
    }

    private ControlPlane.Settings controlSettings(ControlPlane.Listen listen) {
        return new ControlPlane.Settings(options.workerTimeout(), options.maxCallBytes(),
                options.types().stream().map(Class::getName).toList(), listen);
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
     * Creates the embedded runtime with options (registered classes, directories, worker JVM flags,
     * and whether workers may join from other hosts). Removes the shared-memory files that runtimes
     * of dead processes left behind. With a {@link KilnOptions#joinSecret}, listens for workers on
     * {@link KilnOptions#listen} at once ({@link #joinEndpoint()}).
     *
     * @param options the runtime's options
     * @return a new runtime; close it when done
     * @throws IllegalStateException if it accepts workers and cannot listen on the address given
     */
    public static Kiln local(KilnOptions options) {
        return new Kiln(options);
    }

    /** {@return the runtime's options} */
    public KilnOptions options() {
        return options;
    }

    ValueCodec codec() {
        return codec;
    }

    /**
     * {@return the {@code address:port} where workers join this runtime (give it to {@link KilnWorker}), or empty
     *         when it accepts no workers ({@link KilnOptions#joinSecret} unset)}
     */
    public Optional<String> joinEndpoint() {
        synchronized (this) {
            return Optional.ofNullable(plane != null ? plane.endpoint() : null);
        }
    }

    /**
     * {@return the control messages this runtime dropped (forged, replayed, malformed) since it started; all zero
     *         while it has no control plane (no child JVM, no joined worker)}
     */
    public ControlStats controlStats() {
        synchronized (this) {
            return plane != null ? plane.stats() : ControlStats.NONE;
        }
    }

    /**
     * {@return the control messages that worker dropped, as its last heartbeat reported them, or empty if no live
     *         worker has that name}
     *
     * @param workerName a child JVM's or joined worker's name
     */
    public Optional<ControlStats> workerControlStats(String workerName) {
        RemoteHost w = workers.get(workerName);
        return w == null || w.death() != null ? Optional.empty() : Optional.of(w.peerStats());
    }

    /**
     * {@return the hosts of this runtime's actors that can run actors now: this JVM ({@code driver}) first,
     *         then the live child JVMs and joined workers, by name}
     */
    public List<ActorHost> hosts() {
        List<ActorHost> all = new ArrayList<>();
        all.add(local);
        workers.values().stream().filter(w -> w.death() == null)
                .sorted(java.util.Comparator.comparing(RemoteHost::name)).forEach(all::add);
        return all;
    }

    /**
     * Waits until at least {@code count} workers have joined and are alive.
     *
     * @param count   how many joined workers to wait for
     * @param timeout how long to wait
     * @return the live joined workers, by name
     * @throws TimeoutException      if fewer joined in time (saying how many did, and where they join)
     * @throws InterruptedException  if interrupted
     * @throws IllegalStateException if this runtime accepts no workers, or is closed
     */
    public List<ActorHost> awaitWorkers(int count, Duration timeout) throws TimeoutException, InterruptedException {
        ensureOpen();
        if (!options.acceptsWorkers()) {
            throw new IllegalStateException(name + " accepts no workers: set KilnOptions.joinSecret (and listen)");
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (events) {
            while (true) {
                List<ActorHost> joined = joinedWorkers();
                if (joined.size() >= count) {
                    return joined;
                }
                ensureOpen();
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new TimeoutException(joined.size() + " of " + count + " workers joined " + name + " on "
                            + joinEndpoint().orElse("?") + " within " + timeout + ": " + joined);
                }
                TimeUnit.NANOSECONDS.timedWait(events, left);
            }
        }
    }

    private List<ActorHost> joinedWorkers() {
        List<ActorHost> joined = new ArrayList<>();
        workers.values().stream().filter(w -> w instanceof JoinedWorker && w.death() == null)
                .sorted(java.util.Comparator.comparing(RemoteHost::name)).forEach(joined::add);
        return joined;
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
     * Creates an actor where {@code options} place it: in this JVM (the default), in a child JVM
     * ({@link ActorOptions#process}), or on a joined worker ({@link ActorOptions#host},
     * {@link ActorOptions#label}; of the live workers that match, the one with the fewest actors).
     * Blocks until the factory has returned on the actor's thread.
     *
     * @param factory creates the actor on its thread
     * @param options where and how to host it
     * @param <A>     the actor's class
     * @return a handle to bind the actor's methods into graphs or call them
     * @throws ActorCreationException   if the factory throws, or no joined worker matches the placement (the
     *                                  message lists the workers there are)
     * @throws IllegalArgumentException if the name is taken
     * @throws IllegalStateException    if this runtime is closed
     */
    public <A> ActorRef<A> actor(ActorFactory<A> factory, ActorOptions options) {
        ensureOpen();
        int id = ACTOR_IDS.incrementAndGet();
        String actorName = options.name();
        if (actorName != null && names.putIfAbsent(actorName, id) != null) {
            throw new IllegalArgumentException("an actor named '" + actorName + "' exists in " + name
                    + "; actor names must be unique");
        }
        try {
            String processName = !options.inWorker() ? null
                    : options.processName().isEmpty() ? "worker-" + id : options.processName();
            ActorHost host = hostFor(options, processName, actorName != null ? actorName : "#" + id,
                    factory.getClass());
            ActorHost.Started started = startOn(host, id, actorName, options, factory);
            if (actorName == null) {
                names.put(started.name(), id);
            }
            specs.put(id, new ActorSpec(factory, options, processName, started.name()));
            return GraphInternals.actorRef(id, started.name(), classOf(started.className(), factory), this);
        } catch (RuntimeException e) {
            if (actorName != null) {
                names.remove(actorName, id);
            }
            throw e;
        }
    }

    /**
     * How an actor was made, to make it again.
     *
     * @param factory     its factory
     * @param options     its options
     * @param processName its child JVM's name ({@code worker-<id>} for {@link ActorOptions#process()}), or null
     * @param name        its final name
     */
    private record ActorSpec(ActorFactory<?> factory, ActorOptions options, String processName, String name) {
    }

    /** Where an actor of these options goes now: the driver's JVM, its child JVM (started if needed), a joined worker. */
    private ActorHost hostFor(ActorOptions options, String processName, String label, Class<?> factoryClass) {
        if (options.onJoinedWorker()) {
            return joinedWorkerFor(options, label);
        }
        if (options.inWorker()) {
            try {
                return child(processName, factoryClass);
            } catch (IllegalStateException e) {
                throw new ActorCreationException(e.getMessage(), e);
            }
        }
        return local;
    }

    /** Starts an actor on {@code host} under {@code id} and records where it lives. */
    private ActorHost.Started startOn(ActorHost host, int id, String actorName, ActorOptions options,
                                      ActorFactory<?> factory) {
        ActorHost.Started started = host.startActor(id, actorName, options.gpu(), factory);
        if (options.hasGpu()) {
            actorGpus.put(id, new ActorDevice(options.gpu(), started.deviceUuid(), started.deviceFreeBytes()));
        }
        if (host instanceof RemoteHost remote) {
            remoteActors.put(id, new RemoteActor(id, started.name(), remote));
        }
        if (closed) {
            host.stopActor(id);
            throw new IllegalStateException(name + " was closed while actor " + started.name()
                    + " was being created");
        }
        return started;
    }

    /**
     * @param id an actor's id
     * @return why the actor is dead (its thread ended, its worker JVM ended or was lost), or null while it lives
     */
    private String deathOf(int id) {
        ActorThread a = local.thread(id);
        if (a != null) {
            return a.death() != null ? String.valueOf(a.death()) : a.isAlive() ? null : "its thread ended";
        }
        RemoteActor r = remoteActors.get(id);
        return r == null ? "it is not an actor of " + name : r.death();
    }

    /**
     * @param ids actors' ids
     * @return the dead ones among them, each as {@code "<name> (<why>)"}
     */
    List<String> deadActors(List<Integer> ids) {
        List<String> dead = new ArrayList<>();
        for (int id : ids) {
            String death = deathOf(id);
            if (death != null) {
                ActorSpec spec = specs.get(id);
                dead.add((spec != null ? spec.name() : "#" + id) + " (" + death + ")");
            }
        }
        return dead;
    }

    /**
     * Recreates the dead actors among {@code ids} from their factories and options, under their ids and names, so
     * that their {@link ActorRef}s reach the new incarnations: in this JVM; in the child JVM of their process name
     * (started anew if it ended); or on a live joined worker that matches their host name and labels, waiting up to
     * {@code placementTimeout} for one to join. Blocks until every factory returned.
     *
     * @param ids              the actors of a graph
     * @param placementTimeout how long to wait for a matching joined worker
     * @param cancelled        says when to give up waiting (the graph closed)
     * @return what was recreated, and where
     * @throws ActorCreationException if no host matches in time or a factory throws
     * @throws IllegalStateException  if this runtime is closed
     */
    List<String> recreateDead(List<Integer> ids, Duration placementTimeout, java.util.function.BooleanSupplier cancelled) {
        long deadline = System.nanoTime() + placementTimeout.toNanos();
        List<String> recreated = new ArrayList<>();
        for (int id : ids) {
            if (deathOf(id) == null) {
                continue;
            }
            ensureOpen();
            ActorSpec spec = specs.get(id);
            ActorHost host = spec.options().onJoinedWorker()
                    ? awaitJoinedWorker(spec, placementTimeout, deadline, cancelled)
                    : hostFor(spec.options(), spec.processName(), spec.name(), spec.factory().getClass());
            startOn(host, id, spec.name(), spec.options(), spec.factory());
            recreated.add(spec.name() + " in " + (host == local ? "the driver's JVM" : host));
        }
        return recreated;
    }

    /** A live joined worker that matches the placement of {@code spec}, waiting for one to join until {@code deadline}. */
    private ActorHost awaitJoinedWorker(ActorSpec spec, Duration placementTimeout, long deadline,
                                        java.util.function.BooleanSupplier cancelled) {
        while (true) {
            ensureOpen();
            if (cancelled.getAsBoolean()) {
                throw new IllegalStateException("the restart was abandoned: its graph was closed");
            }
            try {
                return joinedWorkerFor(spec.options(), spec.name());
            } catch (ActorCreationException e) {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !options.acceptsWorkers()) {
                    throw new ActorCreationException(e.getMessage() + "; waited " + placementTimeout
                            + " (ActorDeathPolicy.placementTimeout) for one to join", e);
                }
                // Outside the monitor: the message above may take this runtime's lock, which a join holds before it.
                synchronized (events) {
                    try {
                        TimeUnit.NANOSECONDS.timedWait(events, Math.min(left, 200_000_000L));
                    } catch (InterruptedException interrupted) {
                        Thread.currentThread().interrupt();
                        throw new ActorCreationException("interrupted while waiting for a joined worker for actor "
                                + spec.name(), interrupted);
                    }
                }
            }
        }
    }

    /** Wakes whoever waits for a worker to join, so that they look again at what they wait for. */
    void wakeWaiters() {
        synchronized (events) {
            events.notifyAll();
        }
    }

    private static Class<?> classOf(String className, ActorFactory<?> factory) {
        try {
            return Class.forName(className, false, factory.getClass().getClassLoader());
        } catch (ClassNotFoundException e) {
            return Object.class; // a class only the worker can load: bind still resolves methods by reference
        }
    }

    /** The live joined worker with the fewest actors among those that match the placement. */
    private RemoteHost joinedWorkerFor(ActorOptions options, String actor) {
        RemoteHost best = null;
        List<String> available = new ArrayList<>();
        for (ActorHost h : joinedWorkers()) {
            RemoteHost w = (RemoteHost) h;
            WorkerInfo info = w.resources();
            available.add(w.name() + " (host " + info.hostName() + ", labels " + info.labels() + ", " + info.cores()
                    + " cores, " + info.gpus().size() + " GPUs)");
            boolean matches = (options.host() == null || options.host().equals(info.hostName()))
                    && info.labels().entrySet().containsAll(options.labels().entrySet())
                    && options.gpu() < info.gpus().size();
            if (matches && (best == null || w.actorCount() < best.actorCount())) {
                best = w;
            }
        }
        if (best != null) {
            return best;
        }
        String wanted = (options.host() != null ? "host " + options.host() : "any host")
                + (options.labels().isEmpty() ? "" : " with labels " + options.labels())
                + (options.hasGpu() ? " with GPU " + options.gpu() : "");
        if (!this.options.acceptsWorkers()) {
            throw new ActorCreationException("actor " + actor + " asks for a joined worker on " + wanted + ", but "
                    + name + " accepts no workers: set KilnOptions.joinSecret (and listen) and start kiln-worker on "
                    + "that host");
        }
        throw new ActorCreationException("no joined worker of " + name + " matches " + wanted + " for actor " + actor
                + "; " + (available.isEmpty() ? "no worker has joined (they join at " + joinEndpoint().orElse("?")
                + ")" : "joined: " + String.join(", ", available)));
    }

    /**
     * The child JVM called {@code processName}, started (with the control plane) if it does not run. Child JVMs start
     * one at a time under {@link #childLock}, not under this runtime's lock: a worker's join takes that on the control
     * plane's thread, which must stay free to hear the child say it is ready.
     */
    private RemoteHost child(String processName, Class<?> factoryClass) {
        synchronized (childLock) {
            ensureOpen();
            RemoteHost w = workers.get(processName);
            if (w instanceof JoinedWorker) {
                throw new IllegalStateException("'" + processName + "' is a joined worker, not a child JVM: place "
                        + "actors on joined workers with ActorOptions.host or label");
            }
            if (w != null && w.death() == null) {
                return w;
            }
            ControlPlane p;
            synchronized (this) {
                if (plane == null) {
                    plane = ControlPlane.start(options.runDirectory(), name, controlSettings(null));
                }
                p = plane;
            }
            List<Path> classPath = options.workerClassPath();
            if (classPath.isEmpty()) {
                List<Class<?>> needed = new ArrayList<>(options.types());
                if (factoryClass != null) {
                    needed.add(factoryClass);
                }
                classPath = WorkerClassPath.automatic(needed);
            }
            WorkerProcess started = WorkerProcess.start(processName, p, events, options.workerJvmOptions(), classPath,
                    options.hostName(), local::resources, options.shmDirectory().toString(), options.simulatedGpus(),
                    codec, options.workerStartTimeout());
            synchronized (this) {
                RemoteHost now = workers.get(processName);
                if (now != null && now != w) {
                    started.kill();
                    throw new IllegalStateException("a worker named '" + processName + "' joined while the child JVM "
                            + "of that name started; give joined workers names of their own (kiln-worker --name)");
                }
                workers.put(processName, started);
            }
            return started;
        }
    }

    /** Admits joining workers whose names are free while the runtime is open. */
    private final class Joins implements ControlPlane.Joins {
        @Override
        public String refusal(ControlPlane.Hello hello) {
            if (closed) {
                return name + " is closing";
            }
            if (hello.name().equals("driver") || workers.containsKey(hello.name())) {
                return "the worker name '" + hello.name() + "' is taken in " + name
                        + "; give each worker its own name (kiln-worker --name)";
            }
            return null;
        }

        @Override
        public JoinedWorker admit(ControlPlane.Hello hello, WorkerInfo info,
                                  java.util.function.Consumer<RemoteHost> attach) {
            synchronized (Kiln.this) {
                String refusal = refusal(hello);
                if (refusal != null) {
                    throw new IllegalStateException(refusal);
                }
                JoinedWorker w = JoinedWorker.admitted(hello, info, events, codec, options.workerStartTimeout());
                attach.accept(w);
                workers.put(hello.name(), w);
                synchronized (events) {
                    events.notifyAll();
                }
                return w;
            }
        }
    }

    /** Fails the actors of workers that die, and tells the graphs (which fail or restart, by their policy). */
    private final class WorkerEvents implements RemoteHost.Listener {
        @Override
        public void loopDied(RemoteHost worker, long graph, int actor, String cause) {
            RemoteActor r = remoteActors.get(actor);
            String who = "actor " + (r != null ? r.name() : "#" + actor) + " in worker " + worker.name();
            if (r != null) {
                r.died(who + " died of " + cause);
            }
            for (CompiledGraph<?, ?> g : graphs.keySet()) {
                g.reported(graph, who + " died of " + cause);
            }
        }

        @Override
        public void graphFailed(RemoteHost worker, long graph, String why) {
            for (CompiledGraph<?, ?> g : graphs.keySet()) {
                g.reported(graph, "worker " + worker.name() + " reports: " + why);
            }
        }

        @Override
        public void workerDied(RemoteHost worker, String why) {
            if (worker instanceof JoinedWorker) {
                workers.remove(worker.name(), worker);
                LOG.log(closed ? System.Logger.Level.INFO : System.Logger.Level.WARNING, () -> name + ": " + why);
            }
            for (RemoteActor r : remoteActors.values()) {
                if (r.worker() == worker) {
                    r.died(why);
                }
            }
            for (CompiledGraph<?, ?> g : graphs.keySet()) {
                g.workerDied(worker, why);
            }
        }
    }

    /**
     * Compiles a graph with default options.
     *
     * @param input  the graph's input node ({@code Graph.input()}, or {@code Graph.input2()} to {@code input8()}):
     *               its type is the compiled graph's input type
     * @param output the result node, or {@code Graph.outputs(...)}
     * @param <I>    the input type
     * @param <O>    the result type
     * @return the compiled graph, running; close it when done
     * @throws GraphCompileException naming the node at fault and the fix
     */
    public <I, O> CompiledGraph<I, O> compile(InputNode<I> input, Node<O> output) {
        return compile(input, output, CompileOptions.defaults());
    }

    /**
     * Compiles a graph: validates it, plans channels and schedules, allocates the channels and
     * starts each actor's loop.
     *
     * <p>An actor may serve several open graphs at once: its thread runs their loops in turns (a batch of one
     * graph's executions, then the other's), each graph keeps its own order and failures, and closing one leaves
     * the others running. Two kinds of graph need their actors alone, and are refused an actor another open graph
     * holds (and hold theirs against later graphs): one compiled with {@code onActorDeath(RESTART)}, and one that
     * runs the actor on another actor's thread (the compiler shares threads when a JVM hosts more of the graph's
     * actors than it has cores; an actor that another graph holds keeps its own thread instead).
     *
     * <p>{@code input} gives the compiled graph its input type, so javac checks {@code execute}'s argument. A graph
     * whose calls read no input (constants only) may be compiled with any input node; {@code execute} then ignores
     * its argument.
     *
     * @param input   the graph's input node ({@code Graph.input()}, or {@code Graph.input2()} to
     *                {@code input8()}): its type is the compiled graph's input type
     * @param output  the result node, or {@code Graph.outputs(...)}
     * @param options compile options
     * @param <I>     the input type
     * @param <O>     the result type
     * @return the compiled graph, running; close it when done
     * @throws GraphCompileException naming the node (or actor) at fault and the fix; among others when
     *                               {@code output} reads another input node than {@code input}
     * @throws NullPointerException  if {@code input} is null
     * @throws IllegalStateException if this runtime is closed
     */
    public <I, O> CompiledGraph<I, O> compile(InputNode<I> input, Node<O> output, CompileOptions options) {
        ensureOpen();
        if (input == null) {
            throw new NullPointerException("input: pass the graph's Graph.input() node");
        }
        if (output != null && output.input() != null && output.input() != input) {
            throw new GraphCompileException(output.label(), "the output reads another input node than the one passed"
                    + " to compile; pass the Graph.input() node the graph was built on");
        }
        if (output != null) {
            boolean several = output.kind() == Node.Kind.OUTPUTS || output.kind() == Node.Kind.OUTPUT_LIST;
            for (Object out : several ? output.args() : List.of(output)) {
                Node<?> n = (Node<?>) out;
                if (n.kind() == Node.Kind.ALL_REDUCE || n.kind() == Node.Kind.CALL
                        && n.method().returnType() == dev.kiln.tensor.DeviceTensor.class) {
                    throw new GraphCompileException(n.label(), "the graph's result is a DeviceTensor, but the driver has"
                            + " no GPU: it would receive a host Tensor, not the DeviceTensor the graph's type promises;"
                            + " return a host value from the last actor (GpuContext.download or downloadFloats)");
                }
            }
        }
        ExecutionPlan plan = keepHeldActorsOnTheirThreads(GraphCompiler.compile(output, topology(), options));
        CrossingTypes.check(plan, codec, remoteActors::containsKey);
        // The graph starts nothing until start(): its actors are held by its deployment, so a failed compile frees
        // exactly the ones it took.
        CompiledGraph<I, O> graph = new CompiledGraph<>(this, output, options, g -> deployment(g, plan, g.toString()));
        Deployment first = graph.live();
        first.hold();
        try {
            claimNodes(output, graph);
            graphs.put(graph, Boolean.TRUE);
            if (closed) {
                throw new IllegalStateException(name + " was closed during compile");
            }
            graph.start();
            warnIfOversubscribed(graph, options);
            return graph;
        } catch (RuntimeException e) {
            first.release();
            graphs.remove(graph);
            throw e;
        }
    }

    /**
     * Compiles a graph again for where its actors live now, after a restart recreated some of them.
     *
     * @param graph   the graph that compiled {@code output}
     * @param output  its result node
     * @param options its options
     * @param label   the new deployment's name for channel files and workers
     * @return the new deployment, its actors not held yet
     * @throws GraphCompileException if the graph does not compile for the new placement
     * @throws IllegalStateException if this runtime is closed
     */
    Deployment redeploy(CompiledGraph<?, ?> graph, Node<?> output, CompileOptions options, String label) {
        ensureOpen();
        return deployment(graph, GraphCompiler.recompile(output, graph, topology(), options), label);
    }

    /** Where every actor of this runtime lives now, and the cores of each of their JVMs, as the compiler sees it. */
    private Topology topology() {
        Map<Integer, ActorPlacement> placements = new HashMap<>();
        Map<ActorPlacement, Integer> cores = new HashMap<>();
        ActorPlacement driver = new ActorPlacement(this.options.hostName(), "driver");
        cores.put(driver, Runtime.getRuntime().availableProcessors());
        local.threads().forEach((id, a) -> placements.put(id, placement(id, driver.host(), driver.process())));
        remoteActors.forEach((id, r) -> {
            placements.put(id, placement(id, r.worker().hostName(), r.worker().name()));
            cores.put(new ActorPlacement(r.worker().hostName(), r.worker().name()), r.worker().resources().cores());
        });
        return new Topology(driver, placements, actorGpus.isEmpty() ? Topology.PeerAccess.NONE : peerAccess(), cores);
    }

    /** Wires a deployment of {@code plan}: the actors of this JVM and of workers, a range of UDP streams. */
    private Deployment deployment(CompiledGraph<?, ?> graph, ExecutionPlan plan, String label) {
        Map<Integer, ActorThread> actors = local.threads();
        Map<Integer, ActorThread> here = new HashMap<>();
        List<RemoteActor> remote = new ArrayList<>();
        for (ActorSchedule s : plan.schedules()) {
            ActorThread a = actors.get(s.actor());
            if (a != null) {
                here.put(s.actor(), a);
            } else {
                remote.add(remoteActors.get(s.actor()));
            }
        }
        int streams = UdpSettings.streams(plan);
        UdpSettings udp = streams == 0 ? null : new UdpSettings(udpStreams.getAndAdd(streams), this.options.udpMtu(),
                this.options.udpTermLength(), this.options.workerTimeout().toNanos(),
                this.options.authenticateData() ? newDataKey() : null);
        ControlPlane controlPlane;
        synchronized (this) {
            controlPlane = plane;
        }
        return new Deployment(graph, label, plan, graph.options(), here, remote, codec, gpus,
                new Peer("driver", ProcessHandle.current().pid(), this.options.hostName(),
                        controlPlane != null ? controlPlane.endpoint() : null, this.options.shmDirectory().toString()),
                controlPlane != null ? controlPlane.aeron() : null, udp, this.options.workerStartTimeout(),
                graph.driverWaker());
    }

    /** Where an actor lives, with its GPU and that GPU's free memory as read when the actor started. */
    private ActorPlacement placement(int id, String hostName, String process) {
        ActorDevice gpu = actorGpus.get(id);
        return gpu == null ? new ActorPlacement(hostName, process)
                : new ActorPlacement(hostName, process, gpu.device(), gpu.uuid(), gpu.freeBytes());
    }

    /** Which devices of each host have peer access, as every live host of this runtime reports its GPUs. */
    private Topology.PeerAccess peerAccess() {
        Set<Topology.PeerAccess.Link> links = new HashSet<>();
        for (ActorHost h : hosts()) {
            WorkerInfo info = h.resources();
            List<WorkerInfo.Gpu> devices = info.gpus();
            for (int d = 0; d < devices.size(); d++) {
                for (int p = d + 1; p < devices.size(); p++) {
                    if (info.peerAccess(d, p) && info.peerAccess(p, d)) {
                        links.add(new Topology.PeerAccess.Link(info.hostName(), devices.get(d).uuid(),
                                devices.get(p).uuid()));
                    }
                }
            }
        }
        return Topology.PeerAccess.of(links);
    }

    /** The GPU of an actor: its index in its JVM, UUID, and free memory once its factory returned. */
    private record ActorDevice(int device, String uuid, long freeBytes) {
    }

    /** SPIN with more spinning threads than CPUs turns every hand-off into a wait for the scheduler. */
    private static void warnIfOversubscribed(CompiledGraph<?, ?> graph, CompileOptions options) {
        String driver = Topology.ActorPlacement.IN_DRIVER.process();
        int threads = 1 + (int) graph.plan().schedules().stream()
                .filter(s -> !s.sharesThread() && s.placement().process().equals(driver)).count();
        int cpus = Runtime.getRuntime().availableProcessors();
        if (options.idle() == IdleMode.SPIN && threads > cpus) {
            LOG.log(System.Logger.Level.WARNING, () -> graph + " spins " + threads + " threads ("
                    + (threads - 1) + " actor threads and the driver) on " + cpus + " CPUs: with IdleMode.SPIN a waiting "
                    + "thread holds its CPU, so hand-offs wait for the scheduler (milliseconds). Use IdleMode.BACKOFF "
                    + "(the default) unless every actor has a core of its own.");
        }
    }

    /**
     * An actor that other open graphs hold runs on its own thread in this graph too, where the plan would have run it
     * on another actor's thread: a guest needs its actor alone, and an actor serving several graphs takes their
     * loops in turns on its own thread.
     */
    private ExecutionPlan keepHeldActorsOnTheirThreads(ExecutionPlan plan) {
        List<ExecutionPlan.ActorSchedule> schedules = new ArrayList<>();
        boolean changed = false;
        for (ExecutionPlan.ActorSchedule s : plan.schedules()) {
            RemoteActor r = remoteActors.get(s.actor());
            ActorThread a = r == null ? local.thread(s.actor()) : null;
            boolean held = r != null ? r.holders().first() != null : a != null && a.holders().first() != null;
            if (s.sharesThread() && held) {
                schedules.add(s.onThreadOf(s.actor()));
                changed = true;
            } else {
                schedules.add(s);
            }
        }
        return !changed ? plan : new ExecutionPlan(plan.inputArity(), plan.maxInflight(), plan.nodes(),
                plan.channels(), schedules, plan.outputs(), plan.multiOutput(), plan.devices(), plan.nccl(),
                plan.communicators(), plan.collectives());
    }

    private static void claimNodes(Node<?> output, Object graph) {
        List<Node<?>> work = new ArrayList<>(List.of(output));
        while (!work.isEmpty()) {
            Node<?> n = work.removeLast();
            Object previous = GraphInternals.claim(n, graph);
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
                if (n.kind() == Node.Kind.ALL_REDUCE) {
                    work.addAll(n.collective());
                }
            }
        }
    }

    /**
     * Calls a method through the dynamic per-call path: a mailbox message and a future per call.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
     * @param method the method
     * @param <A>    the actor's class
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     */
    public <A, R> CompletableFuture<R> call(ActorRef<A> actor, Method0<A, R> method) {
        return dispatch(actor, method, 0, NO_ARGS);
    }

    /**
     * Calls a one-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
     * @param method the method
     * @param a1     the argument
     * @param <A>    the actor's class
     * @param <P1>   the parameter type
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     */
    public <A, P1, R> CompletableFuture<R> call(ActorRef<A> actor, Method1<A, P1, R> method, P1 a1) {
        return dispatch(actor, method, 1, new Object[] {a1});
    }

    /**
     * Calls a two-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
     * @param method the method
     * @param a1     argument 1
     * @param a2     argument 2
     * @param <A>    the actor's class
     * @param <P1>   the first parameter type
     * @param <P2>   the second parameter type
     * @param <R>    the result type
     * @return the future of the result; fails with {@link ActorTaskException} if the method throws, with
     *         {@link ActorDiedException} if the actor is dead or ends before running the call
     */
    public <A, P1, P2, R> CompletableFuture<R> call(ActorRef<A> actor, Method2<A, P1, P2, R> method, P1 a1, P2 a2) {
        return dispatch(actor, method, 2, new Object[] {a1, a2});
    }

    /**
     * Calls a three-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
     */
    public <A, P1, P2, P3, R> CompletableFuture<R> call(ActorRef<A> actor, Method3<A, P1, P2, P3, R> method,
                                                        P1 a1, P2 a2, P3 a3) {
        return dispatch(actor, method, 3, new Object[] {a1, a2, a3});
    }

    /**
     * Calls a 4-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
     */
    public <A, P1, P2, P3, P4, R> CompletableFuture<R> call(ActorRef<A> actor, Method4<A, P1, P2, P3, P4, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4) {
        return dispatch(actor, method, 4, new Object[] {a1, a2, a3, a4});
    }

    /**
     * Calls a 5-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
     */
    public <A, P1, P2, P3, P4, P5, R> CompletableFuture<R> call(ActorRef<A> actor, Method5<A, P1, P2, P3, P4, P5, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5) {
        return dispatch(actor, method, 5, new Object[] {a1, a2, a3, a4, a5});
    }

    /**
     * Calls a 6-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
     */
    public <A, P1, P2, P3, P4, P5, P6, R> CompletableFuture<R> call(ActorRef<A> actor, Method6<A, P1, P2, P3, P4, P5, P6, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5, P6 a6) {
        return dispatch(actor, method, 6, new Object[] {a1, a2, a3, a4, a5, a6});
    }

    /**
     * Calls a 7-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
     */
    public <A, P1, P2, P3, P4, P5, P6, P7, R> CompletableFuture<R> call(ActorRef<A> actor, Method7<A, P1, P2, P3, P4, P5, P6, P7, R> method,
            P1 a1, P2 a2, P3 a3, P4 a4, P5 a5, P6 a6, P7 a7) {
        return dispatch(actor, method, 7, new Object[] {a1, a2, a3, a4, a5, a6, a7});
    }

    /**
     * Calls a 8-argument method through the dynamic per-call path.
     *
     * @param actor  the actor; if an open graph holds it, the call runs on the thread that runs the actor, between
     *               two of the graph's executions
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
        if ((long) arguments.length + function.length > options.maxCallBytes()) {
            throw new IllegalArgumentException("the arguments of call #" + number + " to actor " + actor.name()
                    + " take " + arguments.length + " bytes and the method with what it captured " + function.length
                    + ", more than the " + options.maxCallBytes() + " a dynamic call may carry"
                    + " (KilnOptions.maxCallBytes): raise it, or pass large values through a compiled graph");
        }
        String methodName = dev.kiln.graph.MethodRef.of(method, arity).displayName();
        // Decoded, and the caller's future completed, on a thread of its own: never on the control plane's receiving
        // thread, which callers' continuations (thenAccept, join) would otherwise block, heartbeats with it.
        actor.worker().request(c -> new Message.Call(c, actor.id(), arity, number, function, arguments))
                .whenCompleteAsync((answer, error) -> {
            if (error instanceof RemoteHost.WorkerDeathException) {
                result.completeExceptionally(new ActorDiedException("actor " + actor.name() + " died before call #"
                        + number + " returned: " + error.getMessage(), error));
                return;
            }
            if (error != null) {
                // The actor lives: the call could not be sent (the control stream stayed back-pressured, say).
                result.completeExceptionally(new ActorTaskException(actor.name(), methodName, number, error));
                return;
            }
            try {
                switch (answer) {
                    case Message.Reply r when r.status() == Message.Status.OK ->
                            result.complete((R) Codecs.value(r.value(), codec));
                    case Message.Reply r when r.status() == Message.Status.DIED ->
                            result.completeExceptionally(new ActorDiedException("actor " + actor.name()
                                    + " died before running call #" + number + ": " + r.message()));
                    case Message.Reply r -> result.completeExceptionally(new ActorTaskException(actor.name(), methodName,
                            number, new IllegalStateException(r.message())));
                    case Message.TaskFailed t -> result.completeExceptionally(new ActorTaskException(actor.name(),
                            t.method(), number, new RemoteActorException(new RemoteError(actor.name(), t.method(), number,
                            t.exceptionClass(), t.message().isEmpty() ? null : t.message(), t.stackTrace()))));
                    default -> result.completeExceptionally(new ActorTaskException(actor.name(), methodName, number,
                            new IllegalStateException("an unexpected answer " + answer.getClass().getSimpleName())));
                }
            } catch (RuntimeException e) {
                result.completeExceptionally(new ActorTaskException(actor.name(), methodName, number, e));
            }
        }, COMPLETIONS);
        return result;
    }

    /** @return a fresh key for one graph's authenticated UDP channels ({@link KilnOptions#authenticateData}) */
    private static byte[] newDataKey() {
        byte[] key = new byte[32];
        RANDOM.nextBytes(key);
        return key;
    }

    private ActorThread hosted(ActorRef<?> ref) {
        ActorThread a = ref.owner() == this ? local.thread(ref.id()) : null;
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
        synchronized (childLock) { // after a child JVM being started (by actor() or a restart), so close ends it too
            if (closed) {
                return;
            }
            closed = true;
        }
        wakeWaiters();
        for (CompiledGraph<?, ?> g : List.copyOf(graphs.keySet())) {
            g.close();
        }
        long deadline = System.nanoTime() + STOP_TIMEOUT_MS * 1_000_000;
        local.close(STOP_TIMEOUT_MS);
        // In parallel: each may take up to the deadline, and one slow worker must not eat the others' time.
        List<Thread> stops = new ArrayList<>();
        for (RemoteHost w : List.copyOf(workers.values())) {
            stops.add(Thread.ofVirtual().name("kiln-stop-" + w.name()).start(() ->
                    w.shutdown(Duration.ofNanos(Math.max(1_000_000, deadline - System.nanoTime())))));
        }
        for (Thread t : stops) {
            try {
                t.join(Duration.ofNanos(Math.max(0, deadline - System.nanoTime()) + 10_000_000_000L));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        synchronized (this) {
            if (plane != null) {
                plane.close();
            }
        }
        gpus.close();
    }

    @Override
    public String toString() {
        return name + String.format(Locale.ROOT, "(%d actors, %d graphs%s)", local.threads().size() + remoteActors.size(),
                graphs.size(),
                closed ? ", closed" : "");
    }
}
