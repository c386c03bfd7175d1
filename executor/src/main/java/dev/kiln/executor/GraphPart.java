package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.NcclChannel;
import io.aeron.Aeron;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * The part of a compiled graph that runs in one JVM (the driver's or a worker's): the channels
 * its participants touch, the NCCL ranks of its actors ({@link GraphComms}) and the loops of the
 * actors it hosts. The owner holds the actors for the graph before {@link #create(List)} and runs the
 * phases in step with the graph's other processes: {@link #create(List)} everywhere (the ranks start
 * joining), then {@link #open()} everywhere (the ranks have joined), then {@link #attach()} (each
 * NCCL rank first warms its channels, then runs executions). While attached, a watchdog polls the
 * communicators and reports an error through {@code onPeerLost}. {@link #stop} ends the
 * communicators before it frees the channels: in order when the loops left, by abort when a peer died
 * or a loop is stuck.
 *
 * <p>Not thread-safe: one thread sets up and tears down; the loops run on the actors' threads (a guest's on its
 * carrier's, where the plan has actors share a thread: {@link ActorThread#attach(GraphLoop, ActorThread, int)}).
 */
public final class GraphPart {

    private static final long WATCHDOG_PERIOD_NANOS = 100_000_000;

    private final ExecutionPlan plan;
    private final CompileOptions options;
    private final Object owner;
    private final List<ActorThread> actors = new ArrayList<>();
    private final List<ActorSchedule> schedules = new ArrayList<>();
    private final GraphChannels channels;
    private final Map<Integer, ActorThread> hosted;
    /** This JVM's NCCL ranks of the graph; null until {@link #create} */
    private GraphComms comms;
    private final Duration joinTimeout;
    private final BiConsumer<ActorThread, Throwable> onLoopDeath;
    private final Consumer<String> onPeerLost;
    private GraphLoop[] loops = new GraphLoop[0];
    private final List<AllReduceStep> allReduces = new ArrayList<>();
    private boolean attached;
    private volatile boolean watching;
    private final GraphProbe probe;

    /**
     * @param plan        the plan
     * @param options     the graph's options
     * @param process     this JVM's process name in the plan ({@code driver} for the driver's JVM)
     * @param graphName   the graph's name, unique among the driver's graphs
     * @param peers       every process of the graph, by process name
     * @param hosted      the actor threads of this JVM, by actor id (those of other JVMs are ignored)
     * @param driverWaker the driver thread's waker in the driver's JVM, else null
     * @param gpus        this JVM's GPUs
     * @param joinTimeout how long joining the communicators may take
     * @param codec       encodes values that cross JVMs
     * @param aeron       the client of this host's media driver, for UDP channels; null if the plan has none
     * @param udp         how the plan's UDP channels are laid out; null if it has none
     * @param owner       the graph object the loops belong to (the actors' holder)
     * @param onLoopDeath told, on the actor's thread, when a loop dies
     * @param onPeerLost  told, on an actor's thread or the watchdog's, when the graph can no longer run here: a
     *                    channel lost its peer, a channel failed, or a communicator reports an error
     * @param probe       the graph's instrumentation (statistics, traces) in the driver's JVM, or null for none
     */
    public GraphPart(ExecutionPlan plan, CompileOptions options, String process, String graphName,
                     Map<String, Peer> peers, Map<Integer, ActorThread> hosted, Waker driverWaker, Gpus gpus,
                     Duration joinTimeout, ValueCodec codec, Aeron aeron, UdpSettings udp, Object owner,
                     BiConsumer<ActorThread, Throwable> onLoopDeath, Consumer<String> onPeerLost, GraphProbe probe) {
        this.plan = plan;
        this.options = options;
        this.owner = owner;
        this.onLoopDeath = onLoopDeath;
        this.onPeerLost = onPeerLost;
        this.probe = probe;
        for (ActorSchedule s : plan.schedules()) {
            if (s.placement().process().equals(process)) {
                ActorThread a = hosted.get(s.actor());
                if (a == null) {
                    throw new IllegalStateException("actor " + s.name() + " is not hosted in " + process);
                }
                if (s.sharesThread() && hosted.get(s.carrier()) == null) {
                    throw new IllegalStateException("actor " + s.name() + " is to share the thread of actor #"
                            + s.carrier() + ", which is not hosted in " + process);
                }
                schedules.add(s);
                actors.add(a);
            }
        }
        this.hosted = hosted;
        this.joinTimeout = joinTimeout;
        Map<Integer, Integer> carriers = new HashMap<>();
        for (ActorSchedule s : schedules) {
            carriers.put(s.actor(), s.carrier());
        }
        // A channel wakes the thread that runs its reader's loop: a guest's carrier.
        this.channels = new GraphChannels(plan, process, graphName, peers,
                p -> p == ExecutionPlan.DRIVER ? driverWaker : hosted.get(carriers.getOrDefault(p, p)).waker(),
                p -> p == ExecutionPlan.DRIVER ? null : hosted.get(p).gpu(), gpus, codec, options.slotGrowth(),
                options.checkViews(), aeron, udp);
    }

    /** @return the actor threads of this part, in schedule order */
    public List<ActorThread> actors() {
        return actors;
    }

    /** @return the schedules of this part's actors, in the order of {@link #actors()} */
    public List<ActorSchedule> schedules() {
        return schedules;
    }

    /**
     * Phase one: this JVM's NCCL ranks start joining their communicators, and the channels this JVM writes are
     * created.
     *
     * @param commIds the id of each of the plan's communicators (empty without NCCL), made by its rank 0's process
     * @return this
     * @throws IllegalStateException if a rank cannot start joining, or a channel cannot be made (what was made is
     *                               closed)
     */
    public GraphPart create(List<byte[]> commIds) {
        comms = new GraphComms(plan, hosted, commIds);
        if (!comms.isEmpty()) {
            comms.join(joinTimeout);
        }
        try {
            channels.create();
        } catch (RuntimeException e) {
            comms.close();
            throw e;
        }
        return this;
    }

    /**
     * Phase two: waits until every rank of the graph's communicators joined, maps the channels this JVM reads, and
     * builds the loops.
     *
     * @return this
     * @throws IllegalStateException if the communicators did not all join within the timeout (they are aborted), or a
     *                               channel cannot be opened
     */
    public GraphPart open() {
        try {
            if (comms != null && !comms.isEmpty()) {
                comms.awaitReady(joinTimeout);
            }
            channels.open(comms);
        } catch (RuntimeException e) {
            if (comms != null) {
                comms.close();
            }
            channels.close();
            throw e;
        }
        Channel[] all = channels.channels();
        loops = new GraphLoop[schedules.size()];
        try {
            for (int i = 0; i < loops.length; i++) {
                ActorThread a = actors.get(i);
                List<NcclChannel> warm = channels.ncclEndsOf(a.id());
                Runnable prologue = warm.isEmpty() ? null : () -> warm.forEach(NcclChannel::warm);
                loops[i] = new GraphLoop(schedules.get(i), all, plan.inputArity(), owner, options.idle(), prologue,
                        allReduceSteps(schedules.get(i), a), cause -> onLoopDeath.accept(a, cause), onPeerLost, probe);
            }
        } catch (RuntimeException e) {
            closeAll(Duration.ZERO);
            throw e;
        }
        shareHeavyLoops();
        return this;
    }

    /**
     * Gives the loops of the actors that may share threads here ({@link ExecutionPlan#mayShareThread}) one
     * {@link SharedLoops}, when the plan put guests on a carrier and left those actors more than one thread: the threads
     * may then take turns running each other's heavy loops.
     */
    private void shareHeavyLoops() {
        if (schedules.stream().noneMatch(ActorSchedule::sharesThread)) {
            return;
        }
        List<Waker> takers = new ArrayList<>();
        for (int i = 0; i < loops.length; i++) {
            ActorSchedule s = schedules.get(i);
            if (ExecutionPlan.mayShareThread(s, plan.channels()) && !s.sharesThread()) {
                takers.add(actors.get(i).waker());
            }
        }
        if (takers.size() < 2) {
            return; // one thread: nobody to take turns with
        }
        SharedLoops shared = new SharedLoops(takers.toArray(Waker[]::new));
        for (int i = 0; i < loops.length; i++) {
            if (ExecutionPlan.mayShareThread(schedules.get(i), plan.channels())) {
                loops[i].shared = shared;
                loops[i].host = actors.get(i);
            }
        }
    }

    /** @return the channels by id (null where this JVM touches none) */
    public Channel[] channels() {
        return channels.channels();
    }

    /** This actor's part of each all-reduce it is a member of, by collective id; kept to be freed at close. */
    private Map<Integer, AllReduceStep> allReduceSteps(ActorSchedule schedule, ActorThread actor) {
        Map<Integer, AllReduceStep> steps = new HashMap<>();
        for (ExecutionPlan.Operation op : schedule.ops()) {
            if (op instanceof ExecutionPlan.AllReduce r) {
                ExecutionPlan.CollectiveSpec c = plan.collectives().get(r.collective());
                AllReduceStep step = new AllReduceStep(c, actor.name(), comms.comm(actor.id(), c.communicator()),
                        actor.gpu(), comms.stream(actor.id()), options.bufferBytes());
                allReduces.add(step);
                steps.put(r.collective(), step);
            }
        }
        return steps;
    }

    /** Starts the loops on the actors' threads, and the watchdog of the communicators, if any. */
    public void attach() {
        attached = true;
        for (int i = 0; i < loops.length; i++) {
            actors.get(i).attach(loops[i], hosted.get(schedules.get(i).carrier()), i);
        }
        if (comms != null && !comms.isEmpty()) {
            watching = true;
            Thread.ofVirtual().name("kiln-nccl-watchdog-" + owner).start(this::watch);
        }
    }

    /**
     * Polls the communicators ({@code ncclCommGetAsyncError}) while the graph runs; on an error, stops the loops and
     * reports it (the owner then tears the graph down, aborting the communicators everywhere).
     */
    private void watch() {
        while (watching) {
            String error = comms.asyncError();
            if (error != null) {
                watching = false;
                stopLoops();
                onPeerLost.accept(error);
                return;
            }
            LockSupport.parkNanos(WATCHDOG_PERIOD_NANOS);
        }
    }

    /** Asks every loop to leave the graph at its next duty cycle; does not wait. */
    public void stopLoops() {
        for (int i = 0; i < loops.length; i++) {
            loops[i].stop();
            actors.get(i).wake();
        }
    }

    /**
     * Stops the loops, waits up to {@code teardownTimeout} for them to leave, frees the actors
     * of a part that never started, ends the communicators and closes the channels (deleting the
     * shared-memory files this JVM wrote) once no loop can touch them: at once, or, if a loop is
     * still inside a method, by a background thread when it leaves. Communicators end in order
     * (their pending work completes, then they are destroyed) when the loops left and
     * {@code abort} is false; else they are aborted first, which also frees a loop that waits on
     * the device behind a transfer whose peer is gone.
     *
     * @param abort whether a peer of the graph died (or the communicators reported an error): abort at once
     * @return whether every loop left within the timeout
     */
    public boolean stop(boolean abort) {
        watching = false;
        stopLoops();
        if (abort && comms != null) {
            comms.abort();
        }
        if (!attached) {
            for (ActorThread a : actors) {
                a.release(owner);
            }
            closeAll(Duration.ZERO);
            return true;
        }
        long deadline = System.nanoTime() + options.teardownTimeout().toNanos();
        boolean left = awaitLeft(deadline);
        if (left) {
            closeAll(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
        } else {
            if (comms != null) {
                comms.abort();
            }
            Thread.ofVirtual().name("kiln-teardown-" + owner).start(() -> {
                awaitLeft(Long.MAX_VALUE);
                closeAll(Duration.ZERO);
            });
        }
        return left;
    }

    /** Ends the communicators (in order within {@code wait}, else by abort), then closes the channels. */
    private void closeAll(Duration wait) {
        try {
            if (comms != null) {
                if (!comms.isEmpty() && !wait.isZero()) {
                    comms.finish(wait);
                }
                comms.close();
            }
        } finally {
            try {
                for (AllReduceStep s : allReduces) {
                    s.close();
                }
                allReduces.clear();
            } finally {
                channels.close();
            }
        }
    }

    private boolean awaitLeft(long deadline) {
        boolean left = true;
        for (ActorThread a : actors) {
            while (a.holders().contains(owner) && a.isRunning()
                    && (deadline == Long.MAX_VALUE || System.nanoTime() - deadline < 0)) {
                LockSupport.parkNanos(100_000);
            }
            left &= !a.holders().contains(owner) || !a.isRunning();
        }
        return left;
    }

}
