package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.executor.Gpus;
import dev.kiln.executor.StaleFiles;
import dev.kiln.executor.ThreadHost;
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
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeoutException;
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

    private static final AtomicLong KILN_IDS = new AtomicLong();
    private static final long STOP_TIMEOUT_MS = 5_000;
    private static final Object[] NO_ARGS = {};

    private final String name = "kiln-" + KILN_IDS.incrementAndGet();
    private final KilnOptions options;
    private final ValueCodec codec = new ValueCodec();
    /** The GPUs this JVM's actors use: CUDA's, or simulated ones ({@link KilnOptions#simulatedGpus}). */
    private final Gpus gpus;
    /** The actors of this JVM, each on a thread of its own. */
    private final ThreadHost local;
    private final ActorRegistry registry;
    private final OpenGraphs graphs = new OpenGraphs();
    private final Cluster cluster;
    private final Placement placement;
    private final DynamicCalls calls;
    private final Deployer deployer;

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
        this.registry = new ActorRegistry(this, name);
        this.cluster = new Cluster(name, options, codec, local, registry, graphs);
        this.placement = new Placement(this, name, options, codec, local, cluster, registry);
        this.calls = new DynamicCalls(registry);
        this.deployer = new Deployer(name, options, codec, gpus, registry, cluster, graphs);
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

    /**
     * {@return the {@code address:port} where workers join this runtime (give it to {@link KilnWorker}), or empty
     *         when it accepts no workers ({@link KilnOptions#joinSecret} unset)}
     */
    public Optional<String> joinEndpoint() {
        return cluster.joinEndpoint();
    }

    /**
     * {@return the control messages this runtime dropped (forged, replayed, malformed) since it started; all zero
     *         while it has no control plane (no child JVM, no joined worker)}
     */
    public ControlStats controlStats() {
        return cluster.controlStats();
    }

    /**
     * {@return the control messages that worker dropped, as its last heartbeat reported them, or empty if no live
     *         worker has that name}
     *
     * @param workerName a child JVM's or joined worker's name
     */
    public Optional<ControlStats> workerControlStats(String workerName) {
        return cluster.workerControlStats(workerName);
    }

    /**
     * {@return the hosts of this runtime's actors that can run actors now: this JVM ({@code driver}) first,
     *         then the live child JVMs and joined workers, by name}
     */
    public List<ActorHost> hosts() {
        return cluster.hosts();
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
        return cluster.awaitWorkers(count, timeout);
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
        return placement.create(factory, options);
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
        return deployer.compile(this, input, output, options);
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
        return deployer.redeploy(graph, output, options, label);
    }

    /**
     * Recreates the dead actors among {@code ids} where their options place them (see {@link Placement#recreateDead}).
     *
     * @param ids              the actors of a graph
     * @param placementTimeout how long to wait for a matching joined worker
     * @param cancelled        says when to give up waiting (the graph closed)
     * @return what was recreated, and where
     * @throws ActorCreationException if no host matches in time or a factory throws
     * @throws IllegalStateException  if this runtime is closed
     */
    List<String> recreateDead(List<Integer> ids, Duration placementTimeout, java.util.function.BooleanSupplier cancelled) {
        return placement.recreateDead(ids, placementTimeout, cancelled);
    }

    /**
     * @param ids actors' ids
     * @return the dead ones among them, each as {@code "<name> (<why>)"}
     */
    List<String> deadActors(List<Integer> ids) {
        return registry.deadActors(ids);
    }

    /** Wakes whoever waits for a worker to join, so that they look again at what they wait for. */
    void wakeWaiters() {
        cluster.wakeWaiters();
    }

    /** @param graph a graph that closed */
    void forget(CompiledGraph<?, ?> graph) {
        graphs.remove(graph);
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
        return calls.dispatch(actor, method, 0, NO_ARGS);
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
        return calls.dispatch(actor, method, 1, new Object[] {a1});
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
        return calls.dispatch(actor, method, 2, new Object[] {a1, a2});
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
        return calls.dispatch(actor, method, 3, new Object[] {a1, a2, a3});
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
        return calls.dispatch(actor, method, 4, new Object[] {a1, a2, a3, a4});
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
        return calls.dispatch(actor, method, 5, new Object[] {a1, a2, a3, a4, a5});
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
        return calls.dispatch(actor, method, 6, new Object[] {a1, a2, a3, a4, a5, a6});
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
        return calls.dispatch(actor, method, 7, new Object[] {a1, a2, a3, a4, a5, a6, a7});
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
        return calls.dispatch(actor, method, 8, new Object[] {a1, a2, a3, a4, a5, a6, a7, a8});
    }

    /**
     * Closes every graph compiled here (their unfinished futures fail with
     * {@link GraphClosedException}), ends every actor thread and every worker JVM (killing one
     * that does not exit in time); pending dynamic calls fail with {@link ActorDiedException}. Returns in bounded time (a few seconds at most when an
     * actor method does not return). Idempotent.
     */
    @Override
    public void close() {
        if (!cluster.markClosed()) { // after a child JVM being started (by actor() or a restart), so close ends it too
            return;
        }
        cluster.wakeWaiters();
        graphs.closeAll();
        long deadline = System.nanoTime() + STOP_TIMEOUT_MS * 1_000_000;
        local.close(STOP_TIMEOUT_MS);
        cluster.shutdown(deadline);
        gpus.close();
    }

    @Override
    public String toString() {
        return name + String.format(Locale.ROOT, "(%d actors, %d graphs%s)", registry.size(), graphs.size(),
                cluster.isClosed() ? ", closed" : "");
    }
}
