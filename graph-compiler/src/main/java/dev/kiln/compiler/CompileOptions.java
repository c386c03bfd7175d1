package dev.kiln.compiler;

import java.time.Duration;
import java.util.Objects;

/**
 * Options for compiling and running a graph. Immutable: each method named after its option
 * ({@link #maxInflight(int)}, {@link #idle(IdleMode)}, ...) returns a copy with that option changed.
 *
 * <pre>{@code
 * CompileOptions.defaults().maxInflight(4).idle(IdleMode.SPIN)
 * }</pre>
 *
 * @param maxInflight     executions that may be submitted and not yet finished; also the slot count of every channel (default 10)
 * @param bufferBytes     size of one channel slot for values that are copied (off-heap and cross-process transports), in bytes (default 1 MiB)
 * @param submitTimeout   how long {@code execute} waits for a free in-flight place before it throws {@code CapacityExceededException} (default 10 s)
 * @param getTimeout      how long {@code GraphFuture.get()} waits before it throws {@code ChannelTimeoutException} (default 10 s)
 * @param teardownTimeout how long {@code close()} waits for actor loops to leave the graph (default 5 s)
 * @param idle            how waiting threads idle (default {@link IdleMode#BACKOFF})
 * @param slotGrowth      whether a value larger than its channel's slot grows the slots (default true); when
 *                        false, that execution fails with an error naming the edge, the size and this option
 * @param gpuMemoryFraction the share of each GPU's free memory (as the topology reports it at compile time)
 *                        that the plan may hold in device receive slots, all-reduce output buffers and NCCL buffers
 *                        ({@link #NCCL_RANK_BYTES}, {@link #NCCL_PEER_BYTES}), in (0, 1] (default 0.9); a GPU edge
 *                        whose receive slots or NCCL buffers do not fit falls back to {@code Transport.STAGED}, an
 *                        all-reduce that does not fit fails the compile
 * @param overlapGpuCommunication whether the compiler places each NCCL receive where its send is issued (as early
 *                        as the data allows, ahead of the reader's earlier computes) so that an executor can run
 *                        receives on a communication stream while those computes run, as Ray's overlap option does
 *                        (default false: a receive stays where its actor first needs it, in bind order unless that
 *                        could deadlock). The executor issues each receive where the plan puts it, on the rank's
 *                        communication stream, but the reader's stream waits for it at once: kernels of the earlier
 *                        computes do not overlap it yet
 * @param checkViews      debug mode (default false): a tensor that a method receives from a shared-memory or UDP
 *                        channel is a view of the channel's slot, valid until the method returns; with this on,
 *                        every such view is closed when its slot is released, so code that keeps one and touches
 *                        it later fails with {@code IllegalStateException} ("Already closed") instead of reading
 *                        a later execution's data. Costs a shared arena per value read; leave off in production
 * @param onActorDeath    what the graph does when one of its actors dies (default {@link ActorDeathPolicy#FAIL}: it
 *                        fails and closes; {@link ActorDeathPolicy#RESTART}: it recreates the dead actors and runs on)
 * @param statistics      whether the graph keeps statistics ({@code CompiledGraph.statistics()}: executions, failures,
 *                        latency histograms per actor method; default true). They cost a few counter writes per
 *                        method call, and two clock reads for the one call in 8 whose latency they sample
 *                        (docs/benchmarks.md). Traces
 *                        ({@code CompiledGraph.startTrace}) and JFR events do not depend on it
 * @param actorThreads    the most threads the graph's actors run on in each JVM (default {@link #AUTO_THREADS}: as
 *                        many as the JVM has cores, an actor per thread while they fit); beyond it, several actors
 *                        of one JVM share a thread, on which the first of them runs their loops in turn (the plan
 *                        says which share: {@code ExecutionPlan.ActorSchedule.carrier()}). Only actors without a GPU, without an all-reduce and whose channels all
 *                        stay in their JVM ({@code Transport.IN_PROCESS}) share; each of the others has a thread of
 *                        its own and counts against the limit, and the sharing actors keep at least one thread.
 *                        {@link #THREAD_PER_ACTOR} gives every actor a thread of its own; >= 0
 */
public record CompileOptions(int maxInflight, long bufferBytes, Duration submitTimeout, Duration getTimeout,
                             Duration teardownTimeout, IdleMode idle, boolean slotGrowth, double gpuMemoryFraction,
                             boolean overlapGpuCommunication, boolean checkViews, ActorDeathPolicy onActorDeath,
                             boolean statistics, int actorThreads) {

    /** The default of {@link #gpuMemoryFraction()}. */
    public static final double DEFAULT_GPU_MEMORY_FRACTION = 0.9;

    /**
     * Device memory the compiler books for each NCCL rank of each communicator of a plan, on the rank's GPU, for the
     * communicator's device-side state: its device communicator and channel structures, work queues, and the
     * small-message (LL/LL128) buffers of the connections NCCL sets up when the communicator is created. 64 MiB. An
     * estimate, not a measurement: NCCL's real use depends on its version, the topology and its environment
     * variables, and has not been measured on a GPU for Kiln.
     */
    public static final long NCCL_RANK_BYTES = 64L << 20;

    /**
     * Device memory the compiler books for each peer an NCCL rank talks to (a point-to-point peer, or a ring
     * neighbour in a collective), on the rank's GPU: 2 channels x 2 directions (send and receive) x 4 MiB
     * ({@code NCCL_BUFFSIZE}'s default, the simple protocol's buffer) = 16 MiB. An estimate, like
     * {@link #NCCL_RANK_BYTES}.
     */
    public static final long NCCL_PEER_BYTES = 16L << 20;

    /**
     * The default of {@link #actorThreads()}: in each JVM, an actor per thread while the graph's actors there are no
     * more than the JVM's cores ({@code Runtime.availableProcessors()}, as the topology reports it), else as many
     * threads as cores; one thread per actor where the topology does not know a JVM's cores.
     */
    public static final int AUTO_THREADS = 0;

    /** The {@link #actorThreads()} that gives every actor a thread of its own, however many cores the JVM has. */
    public static final int THREAD_PER_ACTOR = Integer.MAX_VALUE;

    private static final CompileOptions DEFAULTS = new CompileOptions(10, 1 << 20, Duration.ofSeconds(10),
            Duration.ofSeconds(10), Duration.ofSeconds(5), IdleMode.BACKOFF, true, DEFAULT_GPU_MEMORY_FRACTION, false,
            false, ActorDeathPolicy.FAIL, true, AUTO_THREADS);

    /**
     * Checks the values.
     *
     * @throws IllegalArgumentException on a value out of range, naming the option
     */
    public CompileOptions {
        if (maxInflight < 1) {
            throw new IllegalArgumentException("maxInflight must be >= 1, got " + maxInflight);
        }
        if (bufferBytes < 1) {
            throw new IllegalArgumentException("bufferBytes must be >= 1, got " + bufferBytes);
        }
        positive(submitTimeout, "submitTimeout");
        positive(getTimeout, "getTimeout");
        positive(teardownTimeout, "teardownTimeout");
        Objects.requireNonNull(idle, "idle");
        Objects.requireNonNull(onActorDeath, "onActorDeath");
        if (!(gpuMemoryFraction > 0 && gpuMemoryFraction <= 1)) {
            throw new IllegalArgumentException("gpuMemoryFraction must be in (0, 1], got " + gpuMemoryFraction);
        }
        if (actorThreads < 0) {
            throw new IllegalArgumentException("actorThreads must be >= 1, or AUTO_THREADS (0), got " + actorThreads);
        }
    }

    /**
     * {@return the defaults: maxInflight 10, bufferBytes 1 MiB, timeouts 10 s / 10 s / 5 s, BACKOFF, slot growth on,
     * gpuMemoryFraction 0.9, no GPU communication overlap, no view checks, {@link ActorDeathPolicy#FAIL}, statistics
     * on, {@link #AUTO_THREADS}}
     */
    public static CompileOptions defaults() {
        return DEFAULTS;
    }

    /**
     * {@return a copy with that value}
     *
     * @param value executions in flight at most (and slots per channel), >= 1
     */
    public CompileOptions maxInflight(int value) {
        return new CompileOptions(value, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value bytes per channel slot, >= 1
     */
    public CompileOptions bufferBytes(long value) {
        return new CompileOptions(maxInflight, value, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how long {@code execute} waits for capacity, > 0
     */
    public CompileOptions submitTimeout(Duration value) {
        return new CompileOptions(maxInflight, bufferBytes, value, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how long {@code get()} waits, > 0
     */
    public CompileOptions getTimeout(Duration value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, value, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how long {@code close()} waits for actor loops, > 0
     */
    public CompileOptions teardownTimeout(Duration value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, value, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value how waiting threads idle
     */
    public CompileOptions idle(IdleMode value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, value, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value whether a value larger than its slot grows the channel's slots (true), or fails its
     *              execution with a clear error (false)
     */
    public CompileOptions slotGrowth(boolean value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, value,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the share of each GPU's free memory the plan may hold in receive slots, in (0, 1]
     */
    public CompileOptions gpuMemoryFraction(double value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                value, overlapGpuCommunication, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value whether NCCL receives are placed as early as the data allows (see
     *              {@link #overlapGpuCommunication()})
     */
    public CompileOptions overlapGpuCommunication(boolean value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, value, checkViews, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value whether values read from copying channels are checked for use after release (see
     *              {@link #checkViews()}); a debugging aid that costs an arena per read
     */
    public CompileOptions checkViews(boolean value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, value, onActorDeath, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value what the graph does when one of its actors dies: {@link ActorDeathPolicy#FAIL} (the default) or
     *              {@link ActorDeathPolicy#RESTART}, with its limits
     */
    public CompileOptions onActorDeath(ActorDeathPolicy value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, value, statistics, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value whether the graph keeps statistics (default true)
     */
    public CompileOptions statistics(boolean value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, value, actorThreads);
    }

    /**
     * {@return a copy with that value}
     *
     * @param value the most threads the graph's actors run on in each JVM, >= 1; {@link #AUTO_THREADS} for as many as
     *              the JVM has cores, {@link #THREAD_PER_ACTOR} for a thread per actor
     */
    public CompileOptions actorThreads(int value) {
        return new CompileOptions(maxInflight, bufferBytes, submitTimeout, getTimeout, teardownTimeout, idle, slotGrowth,
                gpuMemoryFraction, overlapGpuCommunication, checkViews, onActorDeath, statistics, value);
    }

    private static void positive(Duration d, String name) {
        Objects.requireNonNull(d, name);
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + " must be > 0, got " + d);
        }
    }
}
