package dev.kiln.executor;

import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.AllReduce;
import dev.kiln.compiler.ExecutionPlan.Arg;
import dev.kiln.compiler.ExecutionPlan.Compute;
import dev.kiln.compiler.ExecutionPlan.ConstantArg;
import dev.kiln.compiler.ExecutionPlan.InputArg;
import dev.kiln.compiler.ExecutionPlan.LocalArg;
import dev.kiln.compiler.ExecutionPlan.Operation;
import dev.kiln.compiler.ExecutionPlan.Read;
import dev.kiln.compiler.ExecutionPlan.Write;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.MethodRef;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ValueCodec;

import java.io.Serializable;
import java.io.UncheckedIOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * One actor's part of a compiled graph: its schedule of READ / COMPUTE / WRITE steps run for
 * execution 0, 1, 2, ... as an Agrona-style duty cycle. {@link #doWork()} runs every execution
 * available, in order, until a step would wait (a value not yet published, a slot not yet released)
 * or the batch is full, publishes and releases once for the batch, and returns the number of steps
 * done, so the hosting thread idles with its idle strategy instead of blocking. A batch holds at most
 * {@link #MAX_BATCH} executions, and no more than fit in about {@link #BATCH_NS} by the loop's own
 * timing: one batch in {@value #TIMED_BATCH_EVERY} times its first execution, and the bound follows
 * (down at once, up by doubling). Cheap methods so share one publication among many executions, while
 * a method of microseconds publishes each result as it is done, so the next actor starts on it at once. A loop
 * offered to the threads of its graph (a heavy stage they take turns at) goes on after a full batch while its next
 * executions are ready, for up to {@link #HOLD_NS}, publishing after each.
 *
 * <p>Channels shared with other processes carry a user exception as a {@link RemoteError} (strings
 * only); the loop converts {@link TaskError}s on the way out and back on the way in, and
 * sleeps in such a channel (see {@link #sleep}) when it waits on it. A value that cannot be
 * sent (a class the codec does not know, a value larger than its slot while slot growth is
 * off, a device tensor of another device or larger than a GPU slot) fails that execution, not the
 * loop. A channel that fails otherwise (an aborted communicator, a broken peer) stops the loop and
 * fails the graph through {@code onPeerLost}; the actor lives on for other graphs.
 *
 * <p>An optional prologue runs once on the actor's thread before the first execution (an NCCL rank
 * warms its channels there, all ranks at once).
 *
 * <p>Instrumented at three points, each a field test when off: JFR events ({@link KilnEvents}) for each step and
 * each channel wait while a recording has them enabled; the latency of each method call into the graph's
 * {@link GraphProbe} when statistics are on; and a span per method call while a {@link TraceWindow} records.
 *
 * <p>Called only by the thread that runs the actor (its own, its carrier, or, for a loop {@link #offer(boolean)
 * offered} to the graph's threads, whichever holds the actor's {@link Turn}), except {@link #stop()} and
 * {@link #executionsDone()}. Allocates nothing per execution except what user methods allocate (and the error record
 * when one throws).
 */
public final class GraphLoop implements KilnIdleStrategy.Sleeper {

    private static final int READ = 0;
    private static final int COMPUTE = 1;
    private static final int WRITE = 2;
    private static final int ALL_REDUCE = 3;
    private static final int ARG_LOCAL = 0;
    private static final int ARG_INPUT = 1;
    private static final int ARG_CONSTANT = 2;
    private static final String[] OPERATION = {"read", "compute", "write", "allreduce"};
    /** The most executions run in a row before the loop publishes, releases and returns to its host. */
    static final int MAX_BATCH = 64;
    /**
     * About the longest a batch runs before it publishes, in nanoseconds: long enough that the publication's fence
     * and wake-up check cost a few percent at most, short enough that a reader downstream waits little for a value
     * that is done.
     */
    static final long BATCH_NS = 4_000;
    /**
     * One batch in this many (a power of two) times its first execution to bound the batches that follow: rarely, as
     * a loop that waits on its peers runs a batch of one execution per call.
     */
    static final int TIMED_BATCH_EVERY = 64;
    /**
     * An execution of at least this many nanoseconds, timed twice in a row, makes a loop {@link #isHeavy() heavy}
     * (the threads of its graph may take turns running it); one of less than half, twice in a row, makes it light
     * again. About a batch's time: sharing costs a claim and a fence per turn, and moves the actor's data between
     * cores, which only a long execution repays.
     */
    static final long HEAVY_NS = BATCH_NS;
    /**
     * How long a thread that ran a full batch of an {@link #offer(boolean) offered} loop goes on with its next
     * executions while they are ready, in nanoseconds, publishing and releasing after each: the threads that take turns then
     * run the graph's other work beside it, instead of the heavy stage moving from thread to thread at every
     * execution (each move a wait on the turn and often a wake-up). Bounded by back-pressure too: the loop stops at the
     * first step that would wait. As long as BACKOFF's longest park.
     */
    static final long HOLD_NS = 1_000_000;
    private static final VarHandle DONE = MethodHandles.arrayElementVarHandle(long[].class);
    /** Index of the published execution count in {@link #done}: alone on its cache lines. */
    private static final int DONE_AT = 16;

    private final String actorName;
    private final Object owner;
    private final IdleMode idle;
    private Runnable prologue;
    private final Consumer<Throwable> onDeath;
    private final Consumer<String> onPeerLost;
    private final int inputArity;
    private final int[] kind;
    private final Channel[] channel;
    private final boolean[] crossing;
    /** For each COMPUTE: the channel its result alone goes to, if that one crosses JVMs; else null. */
    private final Channel[] output;
    private OutputTarget target;
    /**
     * For each COMPUTE whose result Kiln may own (it reaches no in-process channel the driver reads): the tensors
     * {@link #outputTensor} allocated for it that the method returned, by sequence modulo {@link #ring}. The one of
     * sequence n - ring is read by nobody once this loop computes n (every channel has fewer slots than ring), so
     * it is reused or freed then. Null for the other steps.
     */
    private final Tensor[][] owned;
    private final int ring;
    /** For each WRITE: the method whose result it writes, for error messages. */
    private final String[] writes;
    private final int[] reader;
    private final int[] local;
    private final Serializable[] function;
    private final Object[][] argv;
    private final String[] methodName;
    private final int[][] argKind;
    private final int[][] argLocal;
    private final int[][] argIndex;
    private final Object[][] argConstant;
    /** For each ALL_REDUCE: this member's part of the collective. */
    private final AllReduceStep[] allReduce;
    private final Object[] frame;
    private Object actor;
    /** The next execution; the actor's thread only. */
    private long sequence;
    /**
     * The executions finished, at {@link #DONE_AT} between two cache lines of padding: written by the actor's
     * thread with opaque stores, read by {@link #executionsDone()} from any thread.
     */
    private final long[] done = new long[2 * DONE_AT];
    /** For each step: whether its channel {@link Channel#batches() batches}. */
    private final boolean[] batched;
    /** The READ steps whose channels batch (released once per batch) and those that do not (once per execution). */
    private final int[] batchedReads;
    private final int[] singleReads;
    /** The channels this loop writes that batch, each once: published once per batch. */
    private final Channel[] batchedWrites;
    /** Executions before {@link #releasedTo} were released on every batching channel this loop reads. */
    private long releasedTo;
    /** The execution and step at the last {@link #flush()}: what the loop wrote before them is published. */
    private long flushedSequence;
    private int flushedPc;
    /** The most executions the next batch runs: {@link #MAX_BATCH}, less when executions are slow. */
    private int batchLimit = MAX_BATCH;
    /** Calls of {@link #doWork()} that began at an execution's first step: picks the batches that are timed. */
    private int batches;
    private int pc;
    /** The thread that last ran {@link #doWork()}: another one takes its own {@link #target}. */
    private Thread runner;
    /** Whether the last {@link #doWork()} returned because its batch was full (more may be ready), not to wait. */
    private boolean batchFull;
    /** Whether executions take about {@link #HEAVY_NS} or more (see {@link #isHeavy()}). */
    private boolean heavy;
    /** How the last timed execution compared with {@link #HEAVY_NS}: 1 at least, -1 under half, 0 between. */
    private int lastTimed;
    /**
     * The graph's loops in this JVM that its threads take turns running, when this loop's actor may share a thread
     * and the plan has actors share; else null.
     */
    SharedLoops shared;
    /** The thread of this loop's actor; set with {@link #shared}. */
    ActorThread host;
    /** Whether this loop is in {@link #shared}: other threads may take turns running it. */
    private volatile boolean offered;
    private volatile boolean stopped;
    private final String graphName;
    /** The graph's instrumentation in this JVM, or null (a worker's loop, a test's). */
    private final GraphProbe probe;
    /** For each COMPUTE: the recorder of its method's latency, or null when statistics are off. */
    private final LatencyRecorder[] recorder;
    private final int computes;
    private TraceWindow traced;
    private TraceWindow.Track track;
    /** Kept for the loop's life and reused: no event is allocated per step, recording or not. */
    private final KilnEvents.ActorOperation operationEvent = new KilnEvents.ActorOperation();
    private final KilnEvents.ChannelWait waitEvent = new KilnEvents.ChannelWait();
    /** Whether {@link #operationEvent} was begun for the step at {@link #pc}. */
    private boolean operationTimed;
    /** Whether {@link #waitEvent} was begun for the step at {@link #pc}. */
    private boolean waitTimed;

    /**
     * @param schedule   the actor's schedule from the plan
     * @param channels   the graph's channels by id
     * @param inputArity the graph's input arity (how the input record is laid out)
     * @param owner      the compiled graph, for messages
     * @param idle       how the actor's thread idles while it runs this loop
     * @param prologue   runs once on the actor's thread before the first execution, or null
     * @param allReduces this actor's part of each all-reduce it is a member of, by collective id
     * @param onDeath    told (on the actor's thread) when the loop dies of an error it cannot turn into a task error
     * @param onPeerLost told (on the actor's thread) when a channel it waits on lost its peer in another
     *                   process for good, or failed; the loop has stopped, the actor lives on
     * @param probe      the graph's instrumentation in this JVM (statistics, traces), or null for none
     */
    public GraphLoop(ActorSchedule schedule, Channel[] channels, int inputArity, Object owner, IdleMode idle,
                     Runnable prologue, Map<Integer, AllReduceStep> allReduces, Consumer<Throwable> onDeath,
                     Consumer<String> onPeerLost, GraphProbe probe) {
        List<Operation> ops = schedule.ops();
        int n = ops.size();
        this.actorName = schedule.name();
        this.owner = owner;
        this.idle = idle;
        this.prologue = prologue;
        this.onDeath = onDeath;
        this.onPeerLost = onPeerLost;
        this.inputArity = inputArity;
        this.kind = new int[n];
        this.channel = new Channel[n];
        this.crossing = new boolean[n];
        this.output = new Channel[n];
        this.writes = new String[n];
        this.reader = new int[n];
        this.local = new int[n];
        this.function = new Serializable[n];
        this.argv = new Object[n][];
        this.methodName = new String[n];
        this.argKind = new int[n][];
        this.argLocal = new int[n][];
        this.argIndex = new int[n][];
        this.argConstant = new Object[n][];
        this.allReduce = new AllReduceStep[n];
        this.frame = new Object[schedule.frameSize()];

        for (int i = 0; i < n; i++) {
            switch (ops.get(i)) {
                case Read r -> {
                    kind[i] = READ;
                    channel[i] = channels[r.channel()];
                    reader[i] = r.reader();
                    local[i] = r.local();
                }
                case AllReduce a -> {
                    kind[i] = ALL_REDUCE;
                    local[i] = a.local();
                    argLocal[i] = new int[] {a.inputLocal()};
                    allReduce[i] = allReduces.get(a.collective());
                    if (allReduce[i] == null) {
                        throw new IllegalArgumentException("actor " + actorName + " has no part of allreduce#"
                                + a.collective());
                    }
                }
                case Write w -> {
                    kind[i] = WRITE;
                    channel[i] = channels[w.channel()];
                    local[i] = w.local();
                    for (int j = i - 1; j >= 0 && writes[i] == null; j--) {
                        if (ops.get(j) instanceof Compute c && c.local() == w.local()) {
                            writes[i] = c.method().displayName();
                        } else if (ops.get(j) instanceof AllReduce r && r.local() == w.local()) {
                            writes[i] = "allreduce#" + r.collective();
                        }
                    }
                }
                case Compute c -> {
                    kind[i] = COMPUTE;
                    local[i] = c.local();
                    function[i] = c.method().function();
                    methodName[i] = c.method().displayName();
                    int arity = c.args().size();
                    argKind[i] = new int[arity];
                    argLocal[i] = new int[arity];
                    argIndex[i] = new int[arity];
                    argConstant[i] = new Object[arity];
                    argv[i] = new Object[arity];
                    for (int a = 0; a < arity; a++) {
                        Arg arg = c.args().get(a);
                        switch (arg) {
                            case LocalArg l -> {
                                argKind[i][a] = ARG_LOCAL;
                                argLocal[i][a] = l.local();
                            }
                            case InputArg in -> {
                                argKind[i][a] = ARG_INPUT;
                                argLocal[i][a] = in.local();
                                argIndex[i][a] = in.index();
                            }
                            case ConstantArg k -> {
                                argKind[i][a] = ARG_CONSTANT;
                                argConstant[i][a] = k.value();
                            }
                        }
                    }
                }
            }
        }
        this.batched = new boolean[n];
        for (int i = 0; i < n; i++) {
            crossing[i] = channel[i] != null && channel[i].crossesProcesses();
            batched[i] = channel[i] != null && !crossing[i] && channel[i].batches();
        }
        this.batchedReads = java.util.stream.IntStream.range(0, n).filter(i -> kind[i] == READ && batched[i]).toArray();
        this.singleReads = java.util.stream.IntStream.range(0, n).filter(i -> kind[i] == READ && !batched[i]).toArray();
        this.batchedWrites = java.util.stream.IntStream.range(0, n).filter(i -> kind[i] == WRITE && batched[i])
                .mapToObj(i -> channel[i]).distinct().toArray(Channel[]::new);
        for (int i = 0; i < n; i++) {
            if (ops.get(i) instanceof Compute c) {
                int writes = 0;
                int at = -1;
                for (int j = i + 1; j < n; j++) {
                    if (ops.get(j) instanceof Write w && w.local() == c.local()) {
                        writes++;
                        at = j;
                    }
                }
                output[i] = writes == 1 && crossing[at] ? channel[at] : null;
            }
        }
        this.graphName = String.valueOf(owner);
        this.probe = probe;
        this.computes = (int) Arrays.stream(kind).filter(k -> k == COMPUTE).count();
        this.recorder = probe == null ? new LatencyRecorder[n] : probe.attach(actorName, this, methodName);
        int slots = 1;
        for (Channel c : channel) {
            slots = c != null ? Math.max(slots, c.spec().slots()) : slots;
        }
        this.ring = dev.kiln.transport.InProcessChannel.powerOfTwo(slots + 1);
        this.owned = new Tensor[n][];
        for (int i = 0; i < n; i++) {
            if (ops.get(i) instanceof Compute c && !handedToDriver(ops, c.local())) {
                owned[i] = new Tensor[ring];
            }
        }
    }

    /** Whether a local is written to an in-process channel the driver reads: a graph result, which is the caller's. */
    private boolean handedToDriver(List<Operation> ops, int value) {
        for (int j = 0; j < ops.size(); j++) {
            if (ops.get(j) instanceof Write w && w.local() == value && !crossing[j]
                    && channel[j].spec().readers().contains(dev.kiln.compiler.ExecutionPlan.DRIVER)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Frees the tensors Kiln allocated for this loop's results ({@link #outputTensor}) and still holds; the actor's
     * thread, once the loop stopped.
     */
    public void freeOwned() {
        for (Tensor[] ts : owned) {
            if (ts != null) {
                for (int k = 0; k < ts.length; k++) {
                    if (ts[k] != null) {
                        ts[k].close();
                        ts[k] = null;
                    }
                }
            }
        }
    }

    /** Where {@link #outputTensor} builds the result of the method an actor thread runs now. */
    private static final class OutputTarget {
        Channel channel;
        long sequence;
        /** Whether the method running now may get a tensor Kiln owns (a graph step whose result is not the caller's). */
        boolean owned;
        /** A tensor of an old execution, free to reuse, or null. */
        Tensor reusable;
        /** The tensors handed out to the method running now. */
        final java.util.ArrayList<Tensor> handedOut = new java.util.ArrayList<>(2);
    }

    private static final ThreadLocal<OutputTarget> TARGET = ThreadLocal.withInitial(OutputTarget::new);

    /**
     * A tensor for the result of the actor method running on this thread: a view of the slot of
     * the channel the result goes to, when that channel crosses JVMs and has room (returning it
     * then copies nothing), else a tensor Kiln owns when the method runs as a graph step whose
     * result is not the graph's (reused from an execution {@code maxInflight + 1} back when its
     * dtype and shape match, else allocated; Kiln frees it when no step can read it any more, or
     * at once if the method does not return it), else (a graph result, a dynamic call) a new
     * tensor the caller owns.
     *
     * @param dtype the element type
     * @param shape the shape
     * @return the tensor to fill and return
     */
    public static Tensor outputTensor(DType dtype, long... shape) {
        OutputTarget t = TARGET.get();
        Channel c = t.channel;
        if (c != null) {
            t.channel = null;
            MemorySegment slot = c.claimTensor(t.sequence, dtype, shape);
            if (slot != null) {
                return Tensor.view(slot, dtype, shape);
            }
        }
        if (!t.owned) {
            return Tensor.allocate(dtype, shape);
        }
        Tensor r = t.reusable;
        if (r != null && sameShape(r, dtype, shape)) {
            t.reusable = null;
        } else {
            r = Tensor.allocate(dtype, shape);
        }
        t.handedOut.add(r);
        return r;
    }

    private static boolean sameShape(Tensor t, DType dtype, long[] shape) {
        if (t.dtype() != dtype || t.rank() != shape.length) {
            return false;
        }
        for (int d = 0; d < shape.length; d++) {
            if (t.dim(d) != shape[d]) {
                return false;
            }
        }
        return true;
    }

    /**
     * Binds the actor instance; called on the actor's thread before the first {@link #doWork()}.
     *
     * @param instance the actor
     */
    public void bind(Object instance) {
        this.actor = instance;
        this.runner = Thread.currentThread();
        this.target = TARGET.get();
    }

    /**
     * @return whether this loop's executions took about {@link #HEAVY_NS} or more in its last two timed batches (and
     *         have not been under half of it twice in a row since): worth running on whichever thread of the graph is
     *         free. Read by the thread that runs the loop.
     */
    boolean isHeavy() {
        return heavy;
    }

    /**
     * @return whether the last {@link #doWork()} ended with a full batch, so that the next execution may be ready
     *         already (another thread could start on it); read by the thread that ran it
     */
    boolean endedFull() {
        return batchFull;
    }

    /** @return whether other threads may take turns running this loop ({@link #offer(boolean)}) */
    boolean isOffered() {
        return offered;
    }

    /**
     * Offers this loop to the other threads of its graph ({@link #shared}), or takes it back; called by the thread
     * that runs it, holding its actor's turn (or, for an offer, before any other thread can take one). While offered,
     * its in-process channels fence and wake as between threads even where both ends had one waker
     * ({@link dev.kiln.transport.InProcessChannel#shareEnd(boolean)}), and a value for it also wakes the threads
     * that take turns.
     *
     * @param on whether to offer it
     */
    void offer(boolean on) {
        for (int i = 0; i < channel.length; i++) {
            if (channel[i] instanceof dev.kiln.transport.InProcessChannel ch) {
                ch.shareEnd(on);
                if (kind[i] == READ) {
                    ch.alsoWake(on ? shared.takers() : null);
                }
            }
        }
        offered = on;
        if (on) {
            shared.add(this);
        } else {
            shared.remove(this);
        }
    }

    /** Asks the loop to leave the graph at its next duty cycle; any thread. */
    public void stop() {
        stopped = true;
    }

    /** @return whether {@link #stop()} was called */
    public boolean isStopped() {
        return stopped;
    }

    /** @return the compiled graph this loop belongs to */
    public Object owner() {
        return owner;
    }

    /** @return whether a step of this loop reads or writes a channel shared with another process */
    public boolean crossesProcesses() {
        for (boolean c : crossing) {
            if (c) {
                return true;
            }
        }
        return false;
    }

    /** @return how the actor's thread idles while it runs this loop */
    public IdleMode idle() {
        return idle;
    }

    /**
     * Reports that the loop died; called on the actor's thread, which then ends.
     *
     * @param cause the error
     */
    public void died(Throwable cause) {
        stopped = true;
        onDeath.accept(cause);
    }

    /**
     * Runs executions in a row, as many as are available up to the batch's bound, then publishes what it wrote
     * and releases what it read once for the whole batch (on channels that {@link Channel#batches() batch};
     * the others get one offer and one release per execution), and returns. It also publishes and releases
     * before a step waits, so a peer never waits on a value this loop holds back.
     *
     * @return the number of steps done (0: nothing could progress)
     */
    public int doWork() {
        int work = 0;
        final int[] kind = this.kind;
        Thread current = Thread.currentThread();
        if (current != runner) {
            runner = current; // a turn on another thread of the graph: results go through that thread's target
            target = TARGET.get();
        }
        batchFull = false;
        try {
            if (prologue != null) {
                Runnable p = prologue;
                prologue = null;
                p.run();
            }
            int executions = 0;
            int limit = batchLimit;
            long heldSince = 0L; // for an offered loop, when its first full batch in this call ended
            boolean timed = pc == 0 && (++batches & (TIMED_BATCH_EVERY - 1)) == 0;
            // Taken once the first READ has its value (at once for a schedule that starts otherwise), so that a
            // call that finds nothing to do reads no clock.
            long started = timed && kind[0] != READ ? System.nanoTime() : 0L;
            while (true) {
                int i = pc;
                if (!operationTimed && operationEvent.isEnabled()) {
                    operationEvent.begin();
                    operationTimed = true;
                }
                switch (kind[i]) {
                    case READ -> {
                        Object v = channel[i].poll(reader[i], sequence);
                        if (v == Channel.NOT_READY) {
                            flush();
                            waiting();
                            return work;
                        }
                        frame[local[i]] = crossing[i] && v instanceof RemoteError e ? TaskError.fromRemote(e) : v;
                        if (timed && started == 0L) {
                            started = System.nanoTime();
                        }
                    }
                    case COMPUTE -> frame[local[i]] = compute(i);
                    case ALL_REDUCE -> {
                        flush(); // the other members may wait on what this loop wrote
                        frame[local[i]] = allReduce[i].run(frame[argLocal[i][0]], sequence);
                    }
                    default -> {
                        if (!offer(i)) {
                            flush();
                            waiting();
                            return work;
                        }
                    }
                }
                if (operationTimed || waitTimed) {
                    stepEvents(i);
                }
                work++;
                if (++pc == kind.length) {
                    releaseReads();
                    pc = 0;
                    sequence++;
                    DONE.setOpaque(done, DONE_AT, sequence);
                    if (++executions == 1 && timed && started != 0L) {
                        long ns = System.nanoTime() - started;
                        limit = batchLimit = nextBatchLimit(batchLimit, ns);
                        int now = ns >= HEAVY_NS ? 1 : ns < HEAVY_NS / 2 ? -1 : 0;
                        if (now != 0 && now == lastTimed) {
                            heavy = now > 0;
                        }
                        lastTimed = now;
                    }
                    if (executions >= limit) {
                        flush();
                        if (offered) {
                            long now = System.nanoTime();
                            if (heldSince == 0L) {
                                heldSince = now;
                            }
                            if (now - heldSince < HOLD_NS) {
                                continue; // published: its next execution, if ready, without leaving the turn
                            }
                        }
                        batchFull = true;
                        return work; // a full batch: let the host check its stop flag, mailbox and other loops
                    }
                }
            }
        } catch (RuntimeException e) {
            // A channel failed (user code cannot get here: compute turns its exceptions into task errors).
            if (!stopped) {
                stopped = true;
                onPeerLost.accept(actorName + " in " + owner + ": " + e);
            }
            return work + 1;
        }
    }

    /**
     * @param limit         the current bound of a batch
     * @param executionNs   how long one execution just took
     * @return the bound of the next batches: as many executions as fit in {@link #BATCH_NS}, between 1 and
     *         {@link #MAX_BATCH}, and at most twice {@code limit}, so that one fast execution among slow ones does
     *         not let the next batches grow long
     */
    static int nextBatchLimit(int limit, long executionNs) {
        long fit = BATCH_NS / Math.max(1, executionNs);
        return (int) Math.max(1, Math.min(Math.min(fit, MAX_BATCH), 2L * limit));
    }

    /** The step at {@link #pc} has to wait on its channel: times the wait while JFR records channel waits. */
    private void waiting() {
        if (!waitTimed && waitEvent.isEnabled()) {
            waitEvent.begin();
            waitTimed = true;
        }
    }

    /** Commits the JFR events of step {@code i}, which is done; called only while one of them was begun. */
    private void stepEvents(int i) {
        if (waitTimed) {
            waitTimed = false;
            KilnEvents.ChannelWait w = waitEvent;
            w.end();
            if (w.shouldCommit()) {
                w.graph = graphName;
                w.actor = actorName;
                w.channel = channel[i] == null ? -1 : channel[i].spec().id();
                w.side = kind[i] == READ ? "read" : "write";
                w.sequence = sequence;
                w.commit();
            }
        }
        if (operationTimed) {
            operationTimed = false;
            KilnEvents.ActorOperation e = operationEvent;
            e.end();
            if (e.shouldCommit()) {
                e.graph = graphName;
                e.actor = actorName;
                e.operation = OPERATION[kind[i]];
                e.method = kind[i] == COMPUTE ? methodName[i] : writes[i];
                e.channel = channel[i] == null ? -1 : channel[i].spec().id();
                e.sequence = sequence;
                e.commit();
            }
        }
    }

    /**
     * @return the executions this loop finished (its sequence); any thread, a moment late
     */
    public long executionsDone() {
        return (long) DONE.getOpaque(done, DONE_AT);
    }

    /**
     * Publishes what this loop wrote to batching channels and releases, once per channel, every execution
     * it finished reading since the last flush; a release store and a fence each, and a wake-up only for a
     * peer that announced it sleeps. Within one execution since the last flush only the channels of the WRITE steps
     * run since then are published, so a loop of many steps that waits between them (a long chain that visits its
     * actors in turn) does not look at all of its channels at every wait.
     */
    private void flush() {
        long s = sequence;
        int at = pc;
        if (s == flushedSequence) {
            for (int i = flushedPc; i < at; i++) {
                if (kind[i] == WRITE && batched[i]) {
                    channel[i].publish();
                }
            }
        } else {
            for (Channel c : batchedWrites) {
                c.publish();
            }
        }
        flushedSequence = s;
        flushedPc = at;
        if (releasedTo != s) {
            releasedTo = s;
            for (int r = 0; r < batchedReads.length; r++) {
                int i = batchedReads[r];
                channel[i].release(reader[i], s - 1);
            }
        }
    }

    /**
     * Writes a value: into a channel shared with another process, errors go as strings; a value that
     * cannot go (the channel refuses it with {@link IllegalArgumentException}) fails its execution.
     */
    private boolean offer(int i) {
        Object v = frame[local[i]];
        try {
            if (batched[i]) {
                return channel[i].write(sequence, v);
            }
            return channel[i].offer(sequence, crossing[i] && v instanceof TaskError e ? e.toRemote() : v);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            // Nothing was published: fail this execution in place of its value, and offer that on the next try.
            frame[local[i]] = new TaskError(actorName, writes[i], sequence, new IllegalArgumentException("cannot send the "
                    + "result of " + writes[i] + " through c" + channel[i].spec().id()
                    + (crossing[i] ? " to another JVM: " : ": ") + explain(e), e));
            return false;
        }
    }

    /**
     * @param e why a value could not be encoded for another JVM
     * @return the message, with how to register a class with Kiln when that is the fix
     */
    public static String explain(RuntimeException e) {
        String m = String.valueOf(e.getMessage());
        return e instanceof ValueCodec.UnregisteredClassException u && u.className() != null
                ? m + " (with Kiln, register it for every JVM of the runtime: "
                        + ValueCodec.registrationCall(u.className()) + ")" : m;
    }

    /**
     * Sleeps in the channel the loop waits on, if that channel is shared with another process
     * (whose writer or readers cannot unpark this thread); the actor's thread only. If the wait
     * ends unfinished and the channel says its peer is lost for good (a UDP peer's host gone), the
     * loop stops and reports it.
     *
     * @param nanos longest sleep
     * @return whether it slept; false when the loop waits on an in-process channel
     */
    @Override
    public boolean sleep(long nanos) {
        if (shared != null) {
            return false; // in-process channels only, and another thread may be taking a turn at the loop now
        }
        int i = pc;
        if (!crossing[i]) {
            return false;
        }
        int side = kind[i] == READ ? reader[i] : Channel.WRITER_SIDE;
        boolean done = side == Channel.WRITER_SIDE ? channel[i].awaitReleased(sequence, nanos)
                : channel[i].awaitPublished(side, sequence, nanos);
        if (!done && !stopped) {
            String lost = channel[i].peerLoss(side);
            if (lost != null) {
                stopped = true; // the graph cannot finish an execution any more; the actor serves other graphs
                onPeerLost.accept(actorName + " in " + owner + ": " + lost);
            }
        }
        return true;
    }

    /**
     * Once all of an execution's steps are done: drops what it read, and gives back the slots of channels that
     * do not batch (those that do are released by {@link #flush()}). A value read in place (a tensor view of a
     * shared-memory slot) stays valid while any method of the execution may still use it, directly or through a
     * result that aliases it.
     */
    private void releaseReads() {
        for (int r = 0; r < batchedReads.length; r++) {
            frame[local[batchedReads[r]]] = null;
        }
        for (int r = 0; r < singleReads.length; r++) {
            int i = singleReads[r];
            frame[local[i]] = null;
            channel[i].release(reader[i], sequence);
        }
    }

    private Object compute(int i) {
        int[] kinds = argKind[i];
        Object[] args = argv[i];
        for (int a = 0; a < kinds.length; a++) {
            Object v = switch (kinds[a]) {
                case ARG_LOCAL -> frame[argLocal[i][a]];
                case ARG_INPUT -> inputArity == 1 ? frame[argLocal[i][a]] : ((Object[]) frame[argLocal[i][a]])[argIndex[i][a]];
                default -> argConstant[i][a];
            };
            if (v instanceof TaskError && kinds[a] != ARG_CONSTANT) {
                Arrays.fill(args, null);
                return v; // an upstream call failed in this execution: skip and forward
            }
            args[a] = v;
        }
        OutputTarget out = target;
        out.channel = output[i];
        out.sequence = sequence;
        LatencyRecorder r = recorder[i];
        TraceWindow window = probe == null ? null : probe.trace();
        boolean timed = r != null && r.timeNext() || window != null;
        long began = timed ? System.nanoTime() : 0;
        Tensor[] mine = owned[i];
        int k = (int) sequence & (ring - 1);
        if (mine != null) {
            out.owned = true;
            out.reusable = mine[k];
            mine[k] = null;
        }
        Object result = null;
        try {
            result = MethodRef.invoke(function[i], kinds.length, actor, args);
        } catch (VirtualMachineError fatal) {
            throw fatal;
        } catch (Throwable t) {
            result = new TaskError(actorName, methodName[i], sequence, t);
        } finally {
            out.channel = null;
            Arrays.fill(args, null); // do not keep this execution's values alive
            if (mine != null) {
                keepOrFree(out, mine, k, result);
            }
        }
        if (timed) {
            long ended = System.nanoTime();
            if (r != null) {
                r.record(ended - began, result instanceof TaskError);
            }
            if (window != null) {
                trace(window, i, began, ended);
            }
        } else if (r != null) {
            r.count(result instanceof TaskError);
        }
        return result;
    }

    /** Adds a span to this actor's track of {@code window}, until the track is full. */
    private void trace(TraceWindow window, int i, long began, long ended) {
        if (window != traced) {
            traced = window;
            track = window.actor(actorName, computes);
        }
        track.add(methodName[i], sequence, began, ended);
    }

    /** After a graph step: Kiln keeps the tensor it handed out that the method returned, and frees the rest. */
    private static void keepOrFree(OutputTarget out, Tensor[] mine, int k, Object result) {
        Tensor r = out.reusable;
        out.owned = false;
        out.reusable = null;
        if (r != null) {
            r.close();
        }
        java.util.ArrayList<Tensor> handed = out.handedOut;
        for (int j = 0; j < handed.size(); j++) {
            Tensor a = handed.get(j);
            if (a == result) {
                mine[k] = a;
            } else {
                a.close();
            }
        }
        handed.clear();
    }

    @Override
    public String toString() {
        return "GraphLoop(" + actorName + " in " + owner + ", execution " + sequence + ")";
    }
}
