package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.Gpus;
import dev.kiln.executor.GraphChannels;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.GraphPart;
import dev.kiln.executor.Message;
import dev.kiln.executor.Peer;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.TaskError;
import dev.kiln.executor.UdpSettings;
import dev.kiln.graph.Transport;
import dev.kiln.transport.Channel;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.CudaIpcChannel;
import io.aeron.Aeron;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A compiled graph, ready to execute again and again: its channels are allocated and each of
 * its actors runs its schedule on its own thread, in the driver's JVM or in a worker JVM.
 * Created by {@link Kiln#compile}.
 *
 * <p>{@code execute} writes the input into the input channel and returns a
 * {@link GraphFuture}; at most {@code maxInflight} executions are unfinished at once. Results
 * are collected in order by whichever thread waits ({@code get}, or {@code execute} when the
 * graph is full) or, for {@code executeAsync}, by a driver thread started on first use.
 *
 * <p>Thread-safe: {@code execute} calls are serialized by a lock (taken once per call,
 * uncontended when one thread submits); futures may be read from any thread, in any order.
 * {@link #close()} fails every unfinished future with {@link GraphClosedException}, stops the
 * actor loops (the actors stay alive for other graphs and dynamic calls) and frees the
 * channels, removing their shared-memory files. If a worker JVM of the graph dies, every
 * pending and later execution fails with {@link ActorDiedException} naming it, and the graph
 * closes.
 *
 * @param <I> the input type ({@code execute(I)}); for several arguments use {@code execute(a, b, ...)}
 * @param <O> the result type
 */
public final class CompiledGraph<I, O> implements AutoCloseable {

    private static final AtomicLong IDS = new AtomicLong();
    private static final int OPEN = 0;
    private static final int CLOSED = 1;
    private static final int DIED = 2;

    private final long id = IDS.incrementAndGet();
    private final String name = "graph-" + id;
    private final Kiln kiln;
    private final ExecutionPlan plan;
    private final CompileOptions options;
    private final int slots;
    private final GraphPart part;
    private final List<RemoteActor> remoteActors;
    private final List<RemoteHost> workers;
    private final Map<String, Peer> peers;
    private final Peer driver;
    private final UdpSettings udp;
    private final Duration workerTimeout;
    /** Set by {@link #start()}, before the graph is handed to its user. */
    private Channel input;
    private boolean inputCrosses;
    private final Channel[] outChannels;
    private final int[] outReaders;
    private final boolean[] outCrosses;
    private final int[] outPosition;
    private final Object[] outValues;
    private final GraphFuture<?>[] pending;
    private final Waker driverWaker = new Waker();
    private final KilnIdleStrategy driverIdle;
    private final ReentrantLock submitLock = new ReentrantLock();
    private final AtomicBoolean collecting = new AtomicBoolean();
    /** Async futures settled by the collector and not yet published; guarded by {@link #collecting}. */
    private final List<GraphFuture<?>> settledAsync = new ArrayList<>();
    private final AtomicInteger state = new AtomicInteger(OPEN);
    private final AtomicInteger asyncPending = new AtomicInteger();
    private volatile long submitted;
    private volatile long collected;
    /** Why the graph stopped; set once, before {@link #state} leaves OPEN, so whoever sees it closed finds the reason. */
    private final AtomicReference<RuntimeException> terminal = new AtomicReference<>();
    private volatile Thread completer;
    private int outProgress;

    /**
     * Wires the driver's part of the graph; starts nothing. The caller holds the actors for this
     * graph before {@link #start()}.
     */
    CompiledGraph(Kiln kiln, ExecutionPlan plan, CompileOptions options, Map<Integer, ActorThread> local,
                  List<RemoteActor> remote, ValueCodec codec, Gpus gpus, Peer driver, Aeron aeron, UdpSettings udp,
                  Duration workerTimeout) {
        this.kiln = kiln;
        this.plan = plan;
        this.options = options;
        this.slots = plan.maxInflight();
        this.remoteActors = List.copyOf(remote);
        this.driver = driver;
        this.udp = udp;
        this.workerTimeout = workerTimeout;
        Set<RemoteHost> ws = new LinkedHashSet<>();
        Map<String, Peer> all = new HashMap<>();
        all.put(driver.process(), driver);
        for (RemoteActor r : remote) {
            RemoteHost w = r.worker();
            ws.add(w);
            all.put(w.name(), new Peer(w.name(), w.pid(), w.hostName(), w.endpoint(), w.shmDirectory()));
        }
        this.workers = List.copyOf(ws);
        this.peers = Map.copyOf(all);
        this.gpus = gpus;
        this.local = Map.copyOf(local);
        this.part = new GraphPart(plan, options, "driver", name, peers, local, driverWaker, gpus, workerTimeout, codec,
                aeron, udp, this, this::actorDied, this::remoteDied);
        this.driverIdle = new KilnIdleStrategy(options.idle(), driverWaker, this::sleepOnOutput);
        this.pending = new GraphFuture<?>[slots];
        // Read each output channel once per execution, even if Graph.outputs lists a node twice.
        List<OutputRead> distinct = new ArrayList<>();
        this.outPosition = new int[plan.outputs().size()];
        for (int p = 0; p < outPosition.length; p++) {
            OutputRead o = plan.outputs().get(p);
            int at = distinct.indexOf(o);
            if (at < 0) {
                at = distinct.size();
                distinct.add(o);
            }
            outPosition[p] = at;
        }
        this.outChannels = new Channel[distinct.size()];
        this.outReaders = new int[distinct.size()];
        this.outCrosses = new boolean[distinct.size()];
        for (int d = 0; d < distinct.size(); d++) {
            outReaders[d] = distinct.get(d).reader();
        }
        this.outValues = new Object[distinct.size()];
        this.distinctOutputs = distinct;
    }

    private final List<OutputRead> distinctOutputs;
    private final Gpus gpus;
    private final Map<Integer, ActorThread> local;

    /**
     * Opens the graph in every JVM it spans, in two phases (each JVM creates the channels it
     * writes, then maps those it reads), and starts the loops. On failure everything opened is
     * closed again.
     *
     * @throws GraphCompileException if a worker JVM cannot take its part (naming the worker and why)
     */
    void start() {
        List<RemoteHost> prepared = new ArrayList<>();
        try {
            checkSharedMemory();
            List<byte[]> commIds = communicatorIds();
            part.create(commIds);
            if (!workers.isEmpty()) {
                byte[] planBytes = Codecs.planBytes(plan, kiln.codec());
                byte[] optionBytes = Codecs.optionsBytes(options);
                for (RemoteHost w : workers) {
                    await(w, w.request(c -> new Message.Prepare(c, id, name, planBytes, optionBytes, udp,
                            List.copyOf(peers.values()), commIds, workerTimeout.toNanos())), "prepare");
                    prepared.add(w);
                }
            }
            part.open();
            Channel[] channels = part.channels();
            input = channels[ExecutionPlan.INPUT_CHANNEL];
            inputCrosses = input.crossesProcesses();
            for (int d = 0; d < outChannels.length; d++) {
                outChannels[d] = channels[distinctOutputs.get(d).channel()];
                outCrosses[d] = outChannels[d].crossesProcesses();
            }
            for (RemoteHost w : workers) {
                await(w, w.request(c -> new Message.Start(c, id)), "start");
            }
            part.attach();
        } catch (RuntimeException e) {
            for (RemoteHost w : prepared) {
                w.request(c -> new Message.StopGraph(c, id, true));
            }
            part.stop(true);
            throw e instanceof GraphCompileException ? e : new GraphCompileException(name, "cannot open " + name
                    + ": " + e.getMessage());
        }
    }

    /**
     * The id of each of the plan's NCCL communicators, made (as {@code ncclGetUniqueId} must be) in the process of its
     * rank 0: this JVM's GPUs, or a worker asked over the control plane.
     */
    private List<byte[]> communicatorIds() {
        List<byte[]> ids = new ArrayList<>();
        for (ExecutionPlan.CommunicatorSpec c : plan.communicators()) {
            int root = c.ranks().getFirst();
            if (local.containsKey(root)) {
                ids.add(gpus.ops().newCommunicatorId());
                continue;
            }
            RemoteHost w = null;
            for (RemoteActor r : remoteActors) {
                if (r.id() == root) {
                    w = r.worker();
                }
            }
            if (w == null) {
                throw new IllegalStateException("the rank 0 of communicator " + c.id() + " is in no process of " + name);
            }
            byte[] id = await(w, w.request(Message.CommunicatorId::new), "make an NCCL id for").value();
            if (id.length != dev.kiln.transport.gpu.Communicator.ID_BYTES) {
                throw new GraphCompileException(w.name(), "worker " + w.name() + " sent an NCCL id of "
                        + id.length + " bytes, not " + dev.kiln.transport.gpu.Communicator.ID_BYTES);
            }
            ids.add(id);
        }
        return ids;
    }

    /** Waits for a worker's reply to a set-up request; throws GraphCompileException naming the worker on failure. */
    private Message.Reply await(RemoteHost w, CompletableFuture<Message.Answer> reply, String what) {
        Message.Answer m;
        try {
            m = reply.get(workerTimeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " could not " + what + " " + name
                    + ": " + e.getCause().getMessage());
        } catch (TimeoutException e) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " did not " + what + " " + name
                    + " within " + workerTimeout + " (KilnOptions.workerStartTimeout)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new GraphCompileException(w.name(), "interrupted while " + w.name() + " set up " + name);
        }
        if (!(m instanceof Message.Reply r) || r.status() != Message.Status.OK) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " could not " + what + " " + name
                    + ": " + (m instanceof Message.Reply r ? r.message() : m));
        }
        return r;
    }

    /**
     * Before anything is created: every shared-memory channel's processes share its writer's
     * directory (workers that report one host name but another directory are on another host in
     * truth), and the channels this host writes fit in its directory.
     */
    private void checkSharedMemory() {
        List<ChannelSpec> onThisHost = new ArrayList<>();
        for (ChannelSpec c : plan.channels()) {
            boolean hostFile = switch (c.transport()) {
                case SHARED_MEMORY, STAGED, CUDA_IPC -> true;
                case NCCL -> GraphChannels.sideTransport(plan, c) == Transport.SHARED_MEMORY;
                default -> false;
            };
            if (!hostFile) {
                continue;
            }
            Peer writer = peerOf(c.writer());
            for (int r : c.readers()) {
                Peer reader = peerOf(r);
                if (!reader.shmDirectory().equals(writer.shmDirectory())) {
                    throw new GraphCompileException(name, "channel c" + c.id() + " goes through shared memory from "
                            + writer.process() + " to " + reader.process() + ", both on host " + writer.host()
                            + ", but they use different shared-memory directories (" + writer.shmDirectory() + ", "
                            + reader.shmDirectory() + "): if they are on different machines, give each its own host "
                            + "name (KilnOptions.hostName, kiln-worker --host-name); else give them one directory "
                            + "(KilnOptions.shmDirectory, kiln-worker --shm-dir)");
                }
            }
            if (writer.host().equals(driver.host()) && writer.shmDirectory().equals(driver.shmDirectory())) {
                onThisHost.add(c);
            }
        }
        GraphChannels.checkSpace(plan, onThisHost, Path.of(driver.shmDirectory()));
    }

    private Peer peerOf(int participant) {
        if (participant == ExecutionPlan.DRIVER) {
            return driver;
        }
        for (ActorSchedule s : plan.schedules()) {
            if (s.actor() == participant) {
                return peers.get(s.placement().process());
            }
        }
        throw new IllegalStateException("participant " + participant + " is not in the plan");
    }

    /**
     * The driver's sleep while it waits for an output written in another JVM, whose writer cannot
     * unpark it. A writer on another host that stays unreachable fails the graph.
     */
    private boolean sleepOnOutput(long nanos) {
        int d = outProgress;
        if (d < outChannels.length && outCrosses[d] && collected < submitted) {
            if (!outChannels[d].awaitPublished(outReaders[d], collected, nanos)) {
                String lost = outChannels[d].peerLoss(outReaders[d]);
                if (lost != null) {
                    remoteDied(lost);
                }
            }
            return true;
        }
        return false;
    }

    /** @return the plan this graph runs */
    public ExecutionPlan plan() {
        return plan;
    }

    /** @return the plan as Graphviz DOT */
    public String toDot() {
        return plan.toDot();
    }

    /** @return the options the graph was compiled with */
    public CompileOptions options() {
        return options;
    }

    /**
     * Starts an execution with the graph's single input.
     *
     * @param input the input value (ignored by a graph that reads no input)
     * @return the future of the result
     * @throws CapacityExceededException if {@code maxInflight} executions stayed unfinished for {@code submitTimeout}; nothing was started
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died
     * @throws IllegalArgumentException  if the graph takes several input arguments
     */
    public GraphFuture<O> execute(I input) {
        checkArity(1);
        return submit(input, false);
    }

    /**
     * Starts an execution with positional arguments: {@code InputNode.arg(i)} reads argument {@code i}.
     *
     * @param first  argument 0
     * @param second argument 1
     * @param more   arguments 2...
     * @return the future of the result
     * @throws CapacityExceededException if {@code maxInflight} executions stayed unfinished for {@code submitTimeout}; nothing was started
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died
     * @throws IllegalArgumentException  if the number of arguments differs from the graph's
     */
    public GraphFuture<O> execute(Object first, Object second, Object... more) {
        Object[] args = arguments(first, second, more);
        return submit(args, false);
    }

    /**
     * Like {@link #execute(Object)}, with a {@link CompletableFuture} that completes without any
     * thread calling {@code get} (a driver thread collects results while async executions are pending).
     * Its callbacks run on the thread that collected the result, after it stopped collecting, so
     * they may call {@code execute}, {@code executeAsync} or {@code get} on this graph.
     *
     * @param input the input value
     * @return a future completed with the result or the execution's exception
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died
     */
    public CompletableFuture<O> executeAsync(I input) {
        checkArity(1);
        return submit(input, true).async();
    }

    /**
     * Like {@link #execute(Object, Object, Object...)}, with a {@link CompletableFuture}.
     *
     * @param first  argument 0
     * @param second argument 1
     * @param more   arguments 2...
     * @return a future completed with the result or the execution's exception
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died
     */
    public CompletableFuture<O> executeAsync(Object first, Object second, Object... more) {
        Object[] args = arguments(first, second, more);
        return submit(args, true).async();
    }

    private Object[] arguments(Object first, Object second, Object[] more) {
        checkArity(2 + more.length);
        Object[] args = new Object[2 + more.length];
        args[0] = first;
        args[1] = second;
        System.arraycopy(more, 0, args, 2, more.length);
        return args;
    }

    private void checkArity(int given) {
        int arity = plan.inputArity();
        if (given == 1 ? arity > 1 : given != arity) {
            throw new IllegalArgumentException(name + " takes " + arity + " input argument" + (arity == 1 ? "" : "s")
                    + " (InputNode.arg(0.." + Math.max(arity - 1, 0) + ")), execute got " + given);
        }
    }

    private GraphFuture<O> submit(Object record, boolean async) {
        submitLock.lock();
        try {
            ensureOpen();
            if (submitted - collected >= slots) {
                awaitCapacity();
            }
            // Read after waiting: a callback run meanwhile on this thread may have submitted (the lock is reentrant).
            long seq = submitted;
            GraphFuture<O> future = new GraphFuture<>(this, seq, async ? new CompletableFuture<>() : null);
            int slot = (int) (seq % slots);
            pending[slot] = future;
            try {
                if (!input.offer(seq, record)) {
                    offerSlowly(seq, record);
                }
            } catch (RuntimeException e) {
                pending[slot] = null; // not started: nothing will complete it
                if (inputCrosses && e instanceof IllegalArgumentException) {
                    throw new IllegalArgumentException(name + ": cannot send the input of execution #" + seq
                            + " to another JVM, it was not started: " + GraphLoop.explain(e), e);
                }
                throw e;
            }
            if (async) {
                asyncPending.incrementAndGet(); // before the collector can see the execution
            }
            submitted = seq + 1;
            if (state.get() != OPEN) {
                future.fail(terminalFor(seq)); // closed while we published: nobody else will finish it
            }
            if (async) {
                ensureCompleter();
            }
            return future;
        } finally {
            submitLock.unlock();
        }
    }

    /**
     * The input slot of {@code seq - maxInflight} can still be held for a moment after that
     * execution's result arrived: an actor releases its reads once its whole schedule is done.
     */
    private void offerSlowly(long seq, Object record) {
        long deadline = System.nanoTime() + options.submitTimeout().toNanos();
        int tries = 0;
        while (!input.offer(seq, record)) {
            ensureOpen();
            if (System.nanoTime() - deadline > 0) {
                throw new CapacityExceededException(name + ": the input slot of execution #" + (seq - slots)
                        + " was not released within " + options.submitTimeout() + " (submitTimeout); execution #" + seq
                        + " was not started. An actor may be stuck after its last method returned");
            }
            if (++tries < 64) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(10_000);
            }
        }
    }

    private void ensureOpen() {
        if (state.get() != OPEN) {
            RuntimeException t = terminal.get();
            throw t instanceof ActorDiedException died ? new ActorDiedException(died.getMessage(), died)
                    : new GraphClosedException(name + " is closed; compile the graph again to run it");
        }
    }

    private void awaitCapacity() {
        long deadline = System.nanoTime() + options.submitTimeout().toNanos();
        while (submitted - collected >= slots) {
            if (!await(null, deadline)) {
                ensureOpen();
                throw new CapacityExceededException(name + ": " + slots + " executions in flight (maxInflight) and none "
                        + "finished within " + options.submitTimeout() + " (submitTimeout); execution #" + submitted
                        + " was not started. An actor may be slow or stuck; raise CompileOptions.maxInflight or "
                        + "submitTimeout if the load is expected");
            }
            ensureOpen();
        }
    }

    /** Called by {@link GraphFuture#get}. */
    void awaitResult(GraphFuture<?> future, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        if (!await(future, deadline)) {
            throw new ChannelTimeoutException(name + ": execution #" + future.sequence() + " did not finish within "
                    + timeout + " (getTimeout); it is still running: call get again, or look for an actor that is "
                    + "slow or stuck");
        }
    }

    /**
     * Waits until {@code future} is done (or, with no future, until one more execution fits in
     * flight), collecting results meanwhile when no other thread does. The collector completes
     * the {@code CompletableFuture}s of {@code executeAsync} only after it let go of collecting,
     * so that their callbacks may execute, or wait for, this graph.
     *
     * @return false on timeout
     */
    private boolean await(GraphFuture<?> future, long deadline) {
        while (true) {
            if (collecting.compareAndSet(false, true)) {
                int outcome; // 1 ready, 0 timed out, -1 async results to publish first
                List<GraphFuture<?>> settled;
                try {
                    while (true) {
                        int work = collect();
                        if (ready(future)) {
                            outcome = 1;
                            break;
                        }
                        if (!settledAsync.isEmpty()) {
                            outcome = -1;
                            break;
                        }
                        if (System.nanoTime() - deadline > 0) {
                            outcome = 0;
                            break;
                        }
                        driverIdle.idle(work);
                    }
                } finally {
                    settled = stopCollecting();
                }
                publish(settled);
                if (outcome >= 0) {
                    return outcome == 1;
                }
                continue;
            }
            // Another thread collects for us: wait for it to finish our future or to hand over.
            if (ready(future)) {
                return true;
            }
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(20_000);
        }
    }

    private boolean ready(GraphFuture<?> future) {
        return future != null ? future.isDone() : submitted - collected < slots || state.get() != OPEN;
    }

    /** Gives up the collector role; returns the async futures it settled, to publish once it let go. */
    private List<GraphFuture<?>> stopCollecting() {
        List<GraphFuture<?>> settled = settledAsync.isEmpty() ? List.of() : List.copyOf(settledAsync);
        settledAsync.clear();
        driverIdle.reset();
        collecting.set(false);
        return settled;
    }

    private static void publish(List<GraphFuture<?>> settled) {
        // By index: a for-each allocated an iterator of the empty list on every execution (32 B, -prof gc).
        for (int i = 0; i < settled.size(); i++) {
            settled.get(i).publish();
        }
    }

    /** Moves finished results from the output channels into their futures; collector thread only. */
    private int collect() {
        int work = 0;
        long seq = collected;
        long limit = submitted;
        while (seq < limit) {
            while (outProgress < outChannels.length) {
                Object v = outChannels[outProgress].poll(outReaders[outProgress], seq);
                if (v == Channel.NOT_READY) {
                    return work;
                }
                // A value read in place from shared memory is valid until released: the future keeps a copy.
                outValues[outProgress] = !outCrosses[outProgress] ? v
                        : v instanceof RemoteError e ? TaskError.fromRemote(e) : Codecs.owned(v);
                outChannels[outProgress].release(outReaders[outProgress], seq);
                outProgress++;
            }
            int slot = (int) (seq % slots);
            GraphFuture<?> future = pending[slot];
            pending[slot] = null;
            outProgress = 0;
            collected = ++seq;
            future.complete(result());
            if (future.isAsync()) {
                asyncPending.decrementAndGet();
                settledAsync.add(future);
            }
            work++;
        }
        return work;
    }

    private Object result() {
        if (!plan.multiOutput()) {
            Object v = outValues[0];
            outValues[0] = null;
            return v;
        }
        Object[] list = new Object[outPosition.length];
        for (int p = 0; p < list.length; p++) {
            Object v = outValues[outPosition[p]];
            if (v instanceof TaskError) {
                return v; // every output of a failed execution fails
            }
            list[p] = v;
        }
        Arrays.fill(outValues, null);
        return Collections.unmodifiableList(Arrays.asList(list));
    }

    private void ensureCompleter() {
        Thread t = completer;
        if (t == null) {
            t = Thread.ofPlatform().name("kiln-driver-" + name).daemon(true).unstarted(this::completeAsync);
            completer = t;
            t.start();
        } else {
            LockSupport.unpark(t);
        }
    }

    /** The driver thread of {@code executeAsync}: collects while async executions are pending. */
    private void completeAsync() {
        while (state.get() == OPEN) {
            if (asyncPending.get() > 0 && collecting.compareAndSet(false, true)) {
                List<GraphFuture<?>> settled;
                try {
                    while (asyncPending.get() > 0 && state.get() == OPEN && settledAsync.isEmpty()) {
                        driverIdle.idle(collect());
                    }
                } finally {
                    settled = stopCollecting();
                }
                publish(settled);
            } else {
                LockSupport.parkNanos(asyncPending.get() > 0 ? 20_000 : 20_000_000);
            }
        }
    }

    /**
     * Closes the graph: every unfinished future fails with {@link GraphClosedException}, the
     * actor loops stop (waiting up to {@code teardownTimeout} for methods still running) and
     * the channels are freed. The actors stay usable. Idempotent; returns in bounded time.
     */
    @Override
    public void close() {
        if (terminal.get() == null && terminal.compareAndSet(null, new GraphClosedException(name + " was closed"))) {
            state.set(CLOSED);
            terminate(true);
        }
    }

    /** @return whether {@link #close()} was called or an actor died */
    public boolean isClosed() {
        return state.get() != OPEN;
    }

    private void actorDied(ActorThread actor, Throwable cause) {
        died(new ActorDiedException("actor " + actor.name() + " of " + name + " died of " + cause
                + "; the graph is closed: create new actors and compile again", cause));
    }

    /**
     * An actor of this graph in a worker JVM died, or its worker JVM ended: every pending and
     * later execution fails with {@link ActorDiedException} and the graph closes. Called by the
     * runtime on its control-plane or process-reaper thread.
     *
     * @param why what happened, naming the actor or the worker JVM
     */
    void remoteDied(String why) {
        died(new ActorDiedException(why + "; " + name + " is closed: create new actors and compile again"));
    }

    /** @return whether the graph uses an actor of {@code worker} */
    boolean uses(RemoteHost worker) {
        return workers.contains(worker);
    }

    /** @return the graph's id, as sent to worker JVMs */
    long id() {
        return id;
    }

    private void died(ActorDiedException died) {
        if (terminal.compareAndSet(null, died)) {
            state.set(DIED);
            terminate(false);
        }
    }

    private RuntimeException terminalFor(long seq) {
        RuntimeException t = terminal.get();
        if (t instanceof ActorDiedException died) {
            return new ActorDiedException("execution #" + seq + " lost: " + died.getMessage(), died.getCause());
        }
        return new GraphClosedException(name + " was closed before execution #" + seq + " finished");
    }

    private void terminate(boolean waitForLoops) {
        part.stopLoops();
        LockSupport.unpark(completer);
        driverWaker.signal();
        long end = submitted;
        for (long seq = collected; seq < end; seq++) {
            GraphFuture<?> f = pending[(int) (seq % slots)];
            if (f != null && f.sequence() == seq) {
                f.fail(terminalFor(seq));
            }
        }
        kiln.forget(this);
        if (waitForLoops) {
            tearDown();
        } else {
            // Called on a dying actor's thread or the control plane's: tear down elsewhere, never waiting here.
            Thread.ofVirtual().name("kiln-teardown-" + name).start(this::tearDown);
        }
    }

    /**
     * Stops the graph in every JVM: asks each live worker to stop its part and waits for it (up
     * to {@code teardownTimeout}), stops the driver's loops and closes the driver's channels,
     * which deletes the shared-memory files it wrote. Files of a worker that died are removed
     * here too.
     */
    private void tearDown() {
        // After a death, NCCL transfers whose peer is gone would wait forever: every process aborts its communicators.
        boolean abort = state.get() == DIED;
        List<CompletableFuture<Message.Answer>> stops = new ArrayList<>();
        for (RemoteHost w : workers) {
            if (w.death() == null) {
                stops.add(w.request(c -> new Message.StopGraph(c, id, abort)));
            }
        }
        long deadline = System.nanoTime() + options.teardownTimeout().toNanos();
        // No driver thread may touch a channel while it is closed: wait for a submit in progress and
        // take the collector role for good (later waiters find their futures failed without collecting).
        submitLock.lock();
        try {
            boolean collector = false;
            while (!(collector = collecting.compareAndSet(false, true)) && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(100_000);
            }
            if (collector) {
                part.stop(abort);
            } else {
                part.stopLoops(); // a collector is stuck: leave the channels to the GC rather than pull them away
            }
        } finally {
            submitLock.unlock();
        }
        for (CompletableFuture<Message.Answer> stop : stops) {
            try {
                stop.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (ExecutionException | TimeoutException e) {
                // A worker that died meanwhile is cleaned up below; one that hangs is killed by Kiln.close.
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        for (RemoteActor r : remoteActors) {
            r.release(this);
        }
        if (workers.stream().anyMatch(w -> w.death() != null && w.shmDirectory().equals(driver.shmDirectory()))) {
            try {
                ShmChannel.removeStale(Path.of(driver.shmDirectory())); // the files a dead worker of this host wrote
                CudaIpcChannel.removeStale(Path.of(driver.shmDirectory()));
            } catch (java.io.IOException e) {
                // Left for the next Kiln to remove; nothing else can be done here.
            }
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
