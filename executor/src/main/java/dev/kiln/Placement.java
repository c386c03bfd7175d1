package dev.kiln;

import dev.kiln.ActorRegistry.ActorSpec;
import dev.kiln.executor.ActorHandle;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.ThreadHost;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.internal.GraphInternals;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * Puts actors on hosts: chooses where an actor's options place it (this JVM, its child JVM, the joined worker with
 * the fewest actors among those that match), starts it there and records it; after a death, makes it again from its
 * factory under its old id and name.
 *
 * <p>Thread-safe: any thread may create actors; a graph's restart thread recreates them.
 */
final class Placement {

    /** The runtime's name. */
    private final String name;
    private final KilnOptions options;
    private final ValueCodec codec;
    /** The actors of this JVM, each on a thread of its own. */
    private final ThreadHost local;
    private final Cluster cluster;
    private final ActorRegistry registry;
    /** The runtime: the owner of the refs made here. */
    private final Kiln owner;

    /**
     * @param owner    the runtime
     * @param name     its name
     * @param options  its options
     * @param codec    its value codec
     * @param local    the host of this JVM's actors
     * @param cluster  its other hosts
     * @param registry where actors are recorded
     */
    Placement(Kiln owner, String name, KilnOptions options, ValueCodec codec, ThreadHost local, Cluster cluster,
              ActorRegistry registry) {
        this.owner = owner;
        this.name = name;
        this.options = options;
        this.codec = codec;
        this.local = local;
        this.cluster = cluster;
        this.registry = registry;
    }

    /**
     * Creates an actor where {@code options} place it; blocks until the factory returned on the actor's thread.
     *
     * @param factory creates the actor on its thread
     * @param options where and how to host it
     * @param <A>     the actor's class
     * @return the actor's ref
     * @throws ActorCreationException   if the factory throws, or no host matches the placement
     * @throws IllegalArgumentException if the name is taken
     * @throws IllegalStateException    if the runtime is closed
     */
    <A> ActorRef<A> create(ActorFactory<A> factory, ActorOptions options) {
        cluster.ensureOpen();
        int id = ActorRegistry.newId();
        String actorName = options.name();
        if (actorName != null) {
            registry.claimName(actorName, id);
        }
        try {
            String processName = !options.inWorker() ? null
                    : options.processName().isEmpty() ? "worker-" + id : options.processName();
            ActorHost host = hostFor(options, processName, actorName != null ? actorName : "#" + id,
                    factory.getClass());
            ActorHost.Started started = startOn(host, id, actorName, options, factory);
            if (actorName == null) {
                registry.named(started.name(), id);
            }
            registry.made(id, new ActorSpec(factory, options, processName, started.name()));
            return GraphInternals.actorRef(id, started.name(), classOf(started.className(), factory), owner);
        } catch (RuntimeException e) {
            if (actorName != null) {
                registry.releaseName(actorName, id);
            }
            throw e;
        }
    }

    /** Where an actor of these options goes now: the driver's JVM, its child JVM (started if needed), a joined worker. */
    private ActorHost hostFor(ActorOptions options, String processName, String label, Class<?> factoryClass) {
        if (options.onJoinedWorker()) {
            return joinedWorkerFor(options, label);
        }
        if (options.inWorker()) {
            try {
                return cluster.child(processName, factoryClass);
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
        ActorHandle handle = host instanceof RemoteHost remote
                ? new RemoteActor(id, started.name(), remote, codec, this.options.maxCallBytes()) : local.thread(id);
        registry.started(handle, options, started);
        if (cluster.isClosed()) {
            handle.requestStop();
            throw new IllegalStateException(name + " was closed while actor " + started.name()
                    + " was being created");
        }
        return started;
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
     * @throws IllegalStateException  if the runtime is closed
     */
    List<String> recreateDead(List<Integer> ids, Duration placementTimeout, BooleanSupplier cancelled) {
        long deadline = System.nanoTime() + placementTimeout.toNanos();
        List<String> recreated = new ArrayList<>();
        for (int id : ids) {
            if (registry.deathOf(id) == null) {
                continue;
            }
            cluster.ensureOpen();
            ActorSpec spec = registry.spec(id);
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
                                        BooleanSupplier cancelled) {
        while (true) {
            cluster.ensureOpen();
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
                // Outside the monitor: the message above may take the cluster's lock, which a join holds before it.
                try {
                    cluster.awaitEvent(Math.min(left, 200_000_000L));
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    throw new ActorCreationException("interrupted while waiting for a joined worker for actor "
                            + spec.name(), interrupted);
                }
            }
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
        for (RemoteHost w : cluster.joinedWorkers()) {
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
                + "; " + (available.isEmpty() ? "no worker has joined (they join at "
                + cluster.joinEndpoint().orElse("?") + ")" : "joined: " + String.join(", ", available)));
    }
}
