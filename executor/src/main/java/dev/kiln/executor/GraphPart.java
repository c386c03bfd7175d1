package dev.kiln.executor;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import io.aeron.Aeron;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * The part of a compiled graph that runs in one JVM (the driver's or a worker's): the channels
 * its participants touch and the loops of the actors it hosts. The owner holds the actors for
 * the graph before {@link #create()} and runs the phases in step with the graph's other
 * processes: {@link #create()} everywhere, then {@link #open()} everywhere, then
 * {@link #attach()}.
 *
 * <p>Not thread-safe: one thread sets up and tears down; the loops run on the actors' threads.
 */
public final class GraphPart {

    private final ExecutionPlan plan;
    private final CompileOptions options;
    private final Object owner;
    private final List<ActorThread> actors = new ArrayList<>();
    private final List<ActorSchedule> schedules = new ArrayList<>();
    private final GraphChannels channels;
    private final BiConsumer<ActorThread, Throwable> onLoopDeath;
    private final Consumer<String> onPeerLost;
    private GraphLoop[] loops = new GraphLoop[0];
    private boolean attached;

    /**
     * @param plan        the plan
     * @param options     the graph's options
     * @param process     this JVM's process name in the plan ({@code driver} for the driver's JVM)
     * @param graphName   the graph's name, unique among the driver's graphs
     * @param peers       every process of the graph, by process name
     * @param hosted      the actor threads of this JVM, by actor id (those of other JVMs are ignored)
     * @param driverWaker the driver thread's waker in the driver's JVM, else null
     * @param codec       encodes values that cross JVMs
     * @param aeron       the client of this host's media driver, for UDP channels; null if the plan has none
     * @param udp         how the plan's UDP channels are laid out; null if it has none
     * @param owner       the graph object the loops belong to (the actors' holder)
     * @param onLoopDeath told, on the actor's thread, when a loop dies
     * @param onPeerLost  told, on the actor's thread, when a loop stopped because a channel lost its peer
     */
    public GraphPart(ExecutionPlan plan, CompileOptions options, String process, String graphName,
                     Map<String, Peer> peers, Map<Integer, ActorThread> hosted, Waker driverWaker, ValueCodec codec,
                     Aeron aeron, UdpSettings udp, Object owner, BiConsumer<ActorThread, Throwable> onLoopDeath,
                     Consumer<String> onPeerLost) {
        this.plan = plan;
        this.options = options;
        this.owner = owner;
        this.onLoopDeath = onLoopDeath;
        this.onPeerLost = onPeerLost;
        for (ActorSchedule s : plan.schedules()) {
            if (s.placement().process().equals(process)) {
                ActorThread a = hosted.get(s.actor());
                if (a == null) {
                    throw new IllegalStateException("actor " + s.name() + " is not hosted in " + process);
                }
                schedules.add(s);
                actors.add(a);
            }
        }
        this.channels = new GraphChannels(plan, process, graphName, peers,
                p -> p == ExecutionPlan.DRIVER ? driverWaker : hosted.get(p).waker(), codec, options.slotGrowth(),
                options.checkViews(), aeron, udp);
    }

    /** @return the actor threads of this part, in schedule order */
    public List<ActorThread> actors() {
        return actors;
    }

    /**
     * Phase one: creates the channels this JVM writes.
     *
     * @return this
     */
    public GraphPart create() {
        channels.create();
        return this;
    }

    /**
     * Phase two: maps the channels this JVM reads and builds the loops.
     *
     * @return this
     */
    public GraphPart open() {
        channels.open();
        Channel[] all = channels.channels();
        loops = new GraphLoop[schedules.size()];
        for (int i = 0; i < loops.length; i++) {
            ActorThread a = actors.get(i);
            loops[i] = new GraphLoop(schedules.get(i), all, plan.inputArity(), owner, options.idle(),
                    cause -> onLoopDeath.accept(a, cause), onPeerLost);
        }
        return this;
    }

    /** @return the channels by id (null where this JVM touches none) */
    public Channel[] channels() {
        return channels.channels();
    }

    /** Starts the loops on the actors' threads. */
    public void attach() {
        attached = true;
        for (int i = 0; i < loops.length; i++) {
            actors.get(i).attach(loops[i]);
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
     * of a part that never started, and closes the channels (deleting the shared-memory files
     * this JVM wrote) once no loop can touch them: at once, or, if a loop is still inside a
     * method, by a background thread when it leaves.
     *
     * @return whether every loop left within the timeout
     */
    public boolean stop() {
        stopLoops();
        if (!attached) {
            for (ActorThread a : actors) {
                a.release(owner);
            }
            channels.close();
            return true;
        }
        long deadline = System.nanoTime() + options.teardownTimeout().toNanos();
        boolean left = awaitLeft(deadline);
        if (left) {
            channels.close();
        } else {
            Thread.ofVirtual().name("kiln-teardown-" + owner).start(() -> {
                awaitLeft(Long.MAX_VALUE);
                channels.close();
            });
        }
        return left;
    }

    private boolean awaitLeft(long deadline) {
        boolean left = true;
        for (ActorThread a : actors) {
            while (a.holder() == owner && a.isAlive() && (deadline == Long.MAX_VALUE || System.nanoTime() - deadline < 0)) {
                LockSupport.parkNanos(100_000);
            }
            left &= a.holder() != owner || !a.isAlive();
        }
        return left;
    }

    /** Closes the channels without waiting for loops: for a part whose loops never started. */
    public void closeChannels() {
        channels.close();
    }
}
