package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.OutputRead;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.executor.ActorHandle;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.Gpus;
import dev.kiln.executor.GraphChannels;
import dev.kiln.executor.GraphPart;
import dev.kiln.executor.Holders;
import dev.kiln.executor.Message;
import dev.kiln.executor.Peer;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.StaleFiles;
import dev.kiln.executor.UdpSettings;
import dev.kiln.graph.Transport;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import io.aeron.Aeron;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
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
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One incarnation of a compiled graph in every JVM it spans: the plan for where its actors lived when it was made,
 * the channels, the actors' loops, and the parts that worker JVMs run. A {@link CompiledGraph} runs one deployment at
 * a time; when it restarts after an actor died ({@code ActorDeathPolicy.RESTART}) it stops this one and starts a
 * new one, with a new id (what workers and their messages name), new channel files and new UDP streams, so nothing
 * the old one leaves behind (a late message from a worker, a file, a datagram) is taken for the new one's. The
 * actors are held by the deployment, not by the graph: a loop of the old one that is still inside a method keeps its
 * actor out of the new one instead of running in both.
 *
 * <p>{@link #hold}, {@link #start} and {@link #stop} are called by one thread at a time (the compiling thread, the
 * graph's restart thread, or its teardown); {@link #fail} and the queries may be called from any thread. The driver's
 * threads use the channel fields once {@link #start} returned, as {@link CompiledGraph} orders it.
 */
final class Deployment {

    private static final AtomicLong IDS = new AtomicLong();

    private final long id = IDS.incrementAndGet();
    private final CompiledGraph<?, ?> graph;
    /** Names this deployment's channel files and its part in workers: the graph's name, then {@code -r<n>}. */
    private final String label;
    private final ValueCodec codec;
    private final ExecutionPlan plan;
    private final CompileOptions options;
    private final Map<Integer, ActorThread> local;
    private final List<RemoteActor> remoteActors;
    /** Every actor of the plan, in schedule order. */
    private final List<ActorHandle> actors;
    private final List<RemoteHost> workers;
    private final Map<String, Peer> peers;
    private final Peer driver;
    private final UdpSettings udp;
    private final Duration workerTimeout;
    private final Gpus gpus;
    private final GraphPart part;
    private final AtomicReference<String> failure = new AtomicReference<>();
    private final AtomicBoolean stopped = new AtomicBoolean();

    /** The distinct output reads, and for each of the plan's outputs which of them it is. */
    private final List<OutputRead> distinctOutputs;
    final int[] outPosition;
    final int[] outReaders;
    /** Set by {@link #start()}. */
    final Channel[] outChannels;
    final boolean[] outCrosses;
    Channel input;
    boolean inputCrosses;

    /**
     * Wires the driver's part of the deployment; starts nothing.
     *
     * @param graph         the graph it runs
     * @param label         its name for channel files and workers
     * @param plan          the plan
     * @param options       the graph's options
     * @param local         the plan's actors in the driver's JVM, by id
     * @param remote        the plan's actors in worker JVMs
     * @param codec         the runtime's value codec
     * @param gpus          the driver JVM's GPUs
     * @param driver        the driver's process
     * @param aeron         the runtime's Aeron client, or null without a control plane
     * @param udp           the plan's UDP layout, or null
     * @param workerTimeout how long a worker may take to set up its part
     * @param driverWaker   the waker of the driver's threads
     */
    Deployment(CompiledGraph<?, ?> graph, String label, ExecutionPlan plan, CompileOptions options,
               Map<Integer, ActorThread> local, List<RemoteActor> remote, ValueCodec codec, Gpus gpus, Peer driver,
               Aeron aeron, UdpSettings udp, Duration workerTimeout, Waker driverWaker) {
        this.graph = graph;
        this.label = label;
        this.codec = codec;
        this.plan = plan;
        this.options = options;
        this.local = Map.copyOf(local);
        this.remoteActors = List.copyOf(remote);
        this.driver = driver;
        this.udp = udp;
        this.workerTimeout = workerTimeout;
        this.gpus = gpus;
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
        Map<Integer, ActorHandle> handles = new HashMap<>(local);
        remote.forEach(r -> handles.put(r.id(), r));
        this.actors = plan.schedules().stream().map(s -> handles.get(s.actor())).toList();
        this.part = new GraphPart(plan, options, "driver", label, peers, local, driverWaker, gpus, workerTimeout, codec,
                aeron, udp, this, (actor, cause) -> graph.actorDied(this, actor, cause),
                why -> graph.failed(this, why, null), graph.probe());
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
        this.distinctOutputs = distinct;
        this.outChannels = new Channel[distinct.size()];
        this.outReaders = new int[distinct.size()];
        this.outCrosses = new boolean[distinct.size()];
        for (int d = 0; d < distinct.size(); d++) {
            outReaders[d] = distinct.get(d).reader();
        }
    }

    /** @return the id workers know this deployment by (unique in this JVM) */
    long id() {
        return id;
    }

    /** @return the plan */
    ExecutionPlan plan() {
        return plan;
    }

    /** @return the ids of the plan's actors, in schedule order */
    List<Integer> actorIds() {
        return plan.schedules().stream().map(ActorSchedule::actor).toList();
    }

    /** @return whether an actor of this deployment lives in {@code worker} */
    boolean uses(RemoteHost worker) {
        return workers.contains(worker);
    }

    /**
     * Records why the deployment cannot run any more (the first reason is kept).
     *
     * @param why what happened
     */
    void fail(String why) {
        failure.compareAndSet(null, why);
    }

    /**
     * @return the first failure reported for this deployment, or else the first of its actors or workers that is
     *         dead now (and why), or null while all of it can run
     */
    String failure() {
        String f = failure.get();
        if (f != null) {
            return f;
        }
        for (ActorHandle a : actors) {
            String death = a.deathReason();
            if (death != null) {
                return death;
            }
        }
        return null;
    }

    /**
     * Reserves the plan's actors for this deployment; on failure frees what it took. Several graphs may hold an
     * actor at once, unless one needs it to itself ({@link Holders#exclusive}).
     *
     * @throws GraphCompileException naming an actor that is dead or held by a graph that cannot share it with this one
     */
    void hold() {
        List<ActorHandle> held = new ArrayList<>();
        Map<Integer, ActorHandle> byId = new HashMap<>();
        actors.forEach(a -> byId.put(a.id(), a));
        try {
            for (ActorSchedule s : plan.schedules()) {
                ActorHandle a = byId.get(s.actor());
                if (a == null) {
                    continue;
                }
                String death = a.deathReason();
                if (death != null) {
                    throw new GraphCompileException(a.name(), "actor " + a.name() + " is dead (" + death
                            + "); create a new actor and bind its methods instead");
                }
                Object holder = a.hold(this, Holders.exclusive(s, options));
                if (holder != null) {
                    throw new GraphCompileException(a.name(), "actor " + a.name() + " is in " + holder
                            + ", which is still open (or still finishing a method after close) and " + whyAlone(s, holder)
                            + ": close that graph first, or create another actor");
                }
                held.add(a);
            }
        } catch (RuntimeException e) {
            held.forEach(a -> a.release(this));
            throw e;
        }
    }

    /** Why this deployment and {@code holder} cannot both hold the actor of {@code s}. */
    private String whyAlone(ActorSchedule s, Object holder) {
        if (s.sharesThread()) {
            return "this graph runs the actor on the thread of another actor, which needs it alone (compile with "
                    + "CompileOptions.actorThreads(CompileOptions.THREAD_PER_ACTOR) to let graphs share it)";
        }
        if (options.onActorDeath().restart()) {
            return "this graph restarts its actors when one dies (ActorDeathPolicy.RESTART), which needs them alone";
        }
        return holder instanceof Deployment d && d.options.onActorDeath().restart()
                ? "restarts its actors when one dies (ActorDeathPolicy.RESTART), which needs them alone"
                : "runs the actor on the thread of another actor, which needs it alone (compile it with "
                        + "CompileOptions.actorThreads(CompileOptions.THREAD_PER_ACTOR) to let graphs share it)";
    }

    /** Frees the actors of a deployment that never started. */
    void release() {
        actors.forEach(a -> a.release(this));
    }

    /**
     * Opens the deployment in every JVM it spans, in two phases (each JVM creates the channels it
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
                byte[] planBytes = Codecs.planBytes(plan, codec);
                byte[] optionBytes = Codecs.optionsBytes(options);
                for (RemoteHost w : workers) {
                    await(w, w.request(c -> new Message.Prepare(c, id, label, planBytes, optionBytes, udp,
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
            stopped.set(true);
            for (RemoteHost w : prepared) {
                w.request(c -> new Message.StopGraph(c, id, true));
            }
            part.stop(true);
            throw e instanceof GraphCompileException ? e : new GraphCompileException(graph.toString(), "cannot open "
                    + graph + ": " + e.getMessage());
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
                throw new IllegalStateException("the rank 0 of communicator " + c.id() + " is in no process of " + graph);
            }
            byte[] commId = await(w, w.request(Message.CommunicatorId::new), "make an NCCL id for").value();
            if (commId.length != dev.kiln.transport.gpu.Communicator.ID_BYTES) {
                throw new GraphCompileException(w.name(), "worker " + w.name() + " sent an NCCL id of "
                        + commId.length + " bytes, not " + dev.kiln.transport.gpu.Communicator.ID_BYTES);
            }
            ids.add(commId);
        }
        return ids;
    }

    /** Waits for a worker's reply to a set-up request; throws GraphCompileException naming the worker on failure. */
    private Message.Reply await(RemoteHost w, CompletableFuture<Message.Answer> reply, String what) {
        Message.Answer m;
        try {
            m = reply.get(workerTimeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " could not " + what + " " + graph
                    + ": " + e.getCause().getMessage());
        } catch (TimeoutException e) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " did not " + what + " " + graph
                    + " within " + workerTimeout + " (KilnOptions.workerStartTimeout)");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new GraphCompileException(w.name(), "interrupted while " + w.name() + " set up " + graph);
        }
        if (!(m instanceof Message.Reply r) || r.status() != Message.Status.OK) {
            throw new GraphCompileException(w.name(), "worker JVM " + w.name() + " could not " + what + " " + graph
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
                    throw new GraphCompileException(graph.toString(), "channel c" + c.id() + " goes through shared "
                            + "memory from " + writer.process() + " to " + reader.process() + ", both on host "
                            + writer.host() + ", but they use different shared-memory directories ("
                            + writer.shmDirectory() + ", " + reader.shmDirectory() + "): if they are on different "
                            + "machines, give each its own host name (KilnOptions.hostName, kiln-worker --host-name); "
                            + "else give them one directory (KilnOptions.shmDirectory, kiln-worker --shm-dir)");
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

    /** Asks every loop of the driver's JVM to leave at its next duty cycle; does not wait. */
    void stopLoops() {
        part.stopLoops();
    }

    /**
     * Stops the deployment in every JVM, once (later calls return at once): asks each live worker to stop its part
     * and waits for it (up to {@code teardownTimeout}), stops the driver's loops and, with {@code closeChannels},
     * closes the driver's channels, which deletes the shared-memory files it wrote; frees the actors of worker JVMs.
     * Files of a worker that died are removed here too.
     *
     * @param abort         whether a peer died: NCCL communicators are aborted everywhere rather than finished
     * @param closeChannels false when a driver thread may still touch the channels: they are left to the GC
     */
    void stop(boolean abort, boolean closeChannels) {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        List<CompletableFuture<Message.Answer>> stops = new ArrayList<>();
        for (RemoteHost w : workers) {
            if (w.death() == null) {
                stops.add(w.request(c -> new Message.StopGraph(c, id, abort)));
            }
        }
        long deadline = System.nanoTime() + options.teardownTimeout().toNanos();
        if (closeChannels) {
            part.stop(abort);
        } else {
            part.stopLoops();
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
            StaleFiles.removeShared(Path.of(driver.shmDirectory())); // the files a dead worker of this host wrote
        }
    }

    /** @return the graph's name: actors held by this deployment are "in" that graph */
    @Override
    public String toString() {
        return graph.toString();
    }
}
