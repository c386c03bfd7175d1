package dev.kiln;

import dev.kiln.executor.ActorHandle;
import dev.kiln.executor.ControlPlane;
import dev.kiln.executor.JoinedWorker;
import dev.kiln.executor.RemoteActor;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.ThreadHost;
import dev.kiln.executor.WorkerClassPath;
import dev.kiln.executor.WorkerProcess;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.WorkerInfo;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * The hosts of one runtime's actors: this JVM, the child JVMs it started and the workers that joined it, with the
 * control plane they talk over. Admits joining workers, starts child JVMs, hears of their deaths (and passes them on
 * to the actors and graphs concerned), and shuts them all down when the runtime closes. Whether the runtime is still
 * open is kept here: a runtime that closes takes no new worker and starts no new child JVM.
 *
 * <p>Thread-safe. Child JVMs start one at a time under a lock of their own, never under this object's monitor, which
 * guards the control plane and which a join takes on the control plane's thread. Waiting for a worker to join happens
 * on the monitor of the worker events, which every join and every death notifies.
 */
final class Cluster {

    private static final System.Logger LOG = System.getLogger("dev.kiln");

    /** The runtime's name. */
    private final String name;
    private final KilnOptions options;
    private final ValueCodec codec;
    /** The actors of this JVM, each on a thread of its own. */
    private final ThreadHost local;
    private final ActorRegistry registry;
    private final OpenGraphs graphs;
    /** Child JVMs and joined workers, by name; a dead child stays until replaced, a dead joined worker leaves. */
    private final Map<String, RemoteHost> workers = new ConcurrentHashMap<>();
    private final WorkerEvents events = new WorkerEvents();
    /** Held while a child JVM starts, and while the runtime is marked closed. */
    private final Object childLock = new Object();
    /** Started with the runtime when it accepts workers, else with the first child JVM; guarded by {@code this}. */
    private ControlPlane plane;
    private volatile boolean closed;

    /**
     * Listens for joining workers at once if the options accept them.
     *
     * @param name     the runtime's name
     * @param options  its options
     * @param codec    its value codec
     * @param local    the host of this JVM's actors
     * @param registry its actors, which learn of their workers' deaths
     * @param graphs   its open graphs, which learn of their actors' and workers' deaths
     * @throws IllegalStateException if it accepts workers and cannot listen on the address given
     */
    Cluster(String name, KilnOptions options, ValueCodec codec, ThreadHost local, ActorRegistry registry,
            OpenGraphs graphs) {
        this.name = name;
        this.options = options;
        this.codec = codec;
        this.local = local;
        this.registry = registry;
        this.graphs = graphs;
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

    /** @throws IllegalStateException if the runtime is closed */
    void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(name + " is closed; create a new Kiln");
        }
    }

    /** @return whether the runtime is closed (or closing) */
    boolean isClosed() {
        return closed;
    }

    /**
     * Marks the runtime closed, after a child JVM being started (so that the close ends it too).
     *
     * @return false if it was closed already
     */
    boolean markClosed() {
        synchronized (childLock) {
            if (closed) {
                return false;
            }
            closed = true;
            return true;
        }
    }

    /** @return the control plane, or null while there is none */
    ControlPlane plane() {
        synchronized (this) {
            return plane;
        }
    }

    /** @return where workers join, or empty when the runtime accepts none */
    Optional<String> joinEndpoint() {
        synchronized (this) {
            return Optional.ofNullable(plane != null ? plane.endpoint() : null);
        }
    }

    /** @return the control messages the runtime dropped, all zero without a control plane */
    ControlStats controlStats() {
        synchronized (this) {
            return plane != null ? plane.stats() : ControlStats.NONE;
        }
    }

    /**
     * @param workerName a child JVM's or joined worker's name
     * @return the control messages that worker dropped, or empty if no live worker has that name
     */
    Optional<ControlStats> workerControlStats(String workerName) {
        RemoteHost w = workers.get(workerName);
        return w == null || w.death() != null ? Optional.empty() : Optional.of(w.peerStats());
    }

    /** @return this JVM first, then the live child JVMs and joined workers, by name */
    List<ActorHost> hosts() {
        List<ActorHost> all = new ArrayList<>();
        all.add(local);
        workers.values().stream().filter(w -> w.death() == null)
                .sorted(Comparator.comparing(RemoteHost::name)).forEach(all::add);
        return all;
    }

    /** @return the live joined workers, by name */
    List<RemoteHost> joinedWorkers() {
        List<RemoteHost> joined = new ArrayList<>();
        workers.values().stream().filter(w -> w instanceof JoinedWorker && w.death() == null)
                .sorted(Comparator.comparing(RemoteHost::name)).forEach(joined::add);
        return joined;
    }

    /**
     * Waits until at least {@code count} workers have joined and are alive.
     *
     * @param count   how many
     * @param timeout how long to wait
     * @return the live joined workers, by name
     * @throws TimeoutException      if fewer joined in time
     * @throws InterruptedException  if interrupted
     * @throws IllegalStateException if the runtime accepts no workers, or is closed
     */
    List<ActorHost> awaitWorkers(int count, Duration timeout) throws TimeoutException, InterruptedException {
        ensureOpen();
        if (!options.acceptsWorkers()) {
            throw new IllegalStateException(name + " accepts no workers: set KilnOptions.joinSecret (and listen)");
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (events) {
            while (true) {
                List<ActorHost> joined = List.copyOf(joinedWorkers());
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

    /**
     * Waits up to {@code nanos} for a worker to join or die, or the runtime to close.
     *
     * @param nanos how long at most
     * @throws InterruptedException if interrupted
     */
    void awaitEvent(long nanos) throws InterruptedException {
        synchronized (events) {
            TimeUnit.NANOSECONDS.timedWait(events, nanos);
        }
    }

    /** Wakes whoever waits for a worker to join, so that they look again at what they wait for. */
    void wakeWaiters() {
        synchronized (events) {
            events.notifyAll();
        }
    }

    /**
     * The child JVM called {@code processName}, started (with the control plane) if it does not run. Child JVMs start
     * one at a time under {@link #childLock}, not under this object's monitor: a worker's join takes that on the
     * control plane's thread, which must stay free to hear the child say it is ready.
     *
     * @param processName  the child JVM's name
     * @param factoryClass the class of the factory of the actor it starts for, whose class path it needs
     * @return the live child JVM
     * @throws IllegalStateException if the runtime is closed, the name is a joined worker's, or the JVM did not start
     */
    RemoteHost child(String processName, Class<?> factoryClass) {
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

    /**
     * Shuts down every child JVM and joined worker in parallel (killing one that does not exit in time), then the
     * control plane.
     *
     * @param deadline when they must have ended ({@link System#nanoTime()})
     */
    void shutdown(long deadline) {
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
        public JoinedWorker admit(ControlPlane.Hello hello, WorkerInfo info, Consumer<RemoteHost> attach) {
            synchronized (Cluster.this) {
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

    /**
     * Fails the actors of workers that die, and tells the graphs (which fail or restart, by their policy). An actor
     * of a dead worker needs no telling: its handle reads its worker's death.
     */
    private final class WorkerEvents implements RemoteHost.Listener {
        @Override
        public void loopDied(RemoteHost worker, long graph, int actor, String cause) {
            ActorHandle a = registry.handle(actor);
            String who = "actor " + (a != null ? a.name() : "#" + actor) + " in worker " + worker.name();
            if (a instanceof RemoteActor r) {
                r.died(who + " died of " + cause);
            }
            graphs.reported(graph, who + " died of " + cause);
        }

        @Override
        public void graphFailed(RemoteHost worker, long graph, String why) {
            graphs.reported(graph, "worker " + worker.name() + " reports: " + why);
        }

        @Override
        public void workerDied(RemoteHost worker, String why) {
            if (worker instanceof JoinedWorker) {
                workers.remove(worker.name(), worker);
                LOG.log(closed ? System.Logger.Level.INFO : System.Logger.Level.WARNING, () -> name + ": " + why);
            }
            graphs.workerDied(worker, why);
        }
    }
}
