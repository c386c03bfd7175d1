package dev.kiln;

import dev.kiln.transport.WorkerInfo;

/**
 * A place where actors live: it starts and stops them, says whether it is alive, and what
 * resources it offers. Kiln ships three, one per kind of placement in {@link ActorOptions}:
 *
 * <ul>
 *   <li>the driver's JVM ({@link ActorOptions#defaults()}): each actor on a thread of its own;</li>
 *   <li>child JVMs on the driver's host ({@link ActorOptions#process()}), which the runtime starts
 *       with its own {@code java}, class path and flags, and ends with {@link Kiln#close()};</li>
 *   <li>joined workers ({@link ActorOptions#host}, {@link ActorOptions#label}): JVMs that someone
 *       else started (Kubernetes, Slurm, a shell, another runtime) and that joined the driver over
 *       Aeron UDP with the shared secret; see {@link KilnWorker}.</li>
 * </ul>
 *
 * <p>Whatever hosts an actor, compiled graphs reach it through the same channels: in-process
 * between actors of one JVM, shared memory between JVMs of one host, Aeron UDP between hosts. So
 * another runtime that wants its own processes to host Kiln actors, and still get compiled
 * channels, runs a {@link KilnWorker} in each of them ({@link KilnWorker#join} from its own code, or
 * the {@code kiln-worker} script) and lets the actors be placed there by host name or labels.
 * {@link Kiln#hosts()} lists the hosts of a runtime, with their resources, for such a scheduler.
 *
 * <p>Implementations are thread-safe.
 */
public interface ActorHost {

    /**
     * {@return the host's name, unique within its runtime: {@code driver}, a child JVM's process name,
     *         or the name a worker joined with}
     */
    String name();

    /**
     * {@return what the host offers: its host name (the one compiled plans use to tell hosts apart),
     *         labels, cores, and its GPUs (UUID, memory, peer access)}
     */
    WorkerInfo resources();

    /** {@return null while the host can run actors, else why it cannot (it exited, was killed, or was lost)} */
    String death();

    /** {@return how many live actors the host runs} */
    int actorCount();

    /**
     * Starts an actor: runs the factory on a new thread of the host's JVM and keeps the actor on
     * that thread for its whole life. Blocks until the factory returned.
     *
     * @param id      the actor's id, unique within the runtime
     * @param name    the actor's name, or null to let the host name it {@code <class>-<id>}
     * @param gpu     the CUDA device the actor uses, made its thread's current device before the factory runs,
     *                or {@link ActorOptions#NO_GPU}
     * @param factory creates the actor; for a host in another JVM it must be serializable (a lambda or
     *                method reference of an {@link ActorFactory} is)
     * @return the actor's final name and the name of its class
     * @throws ActorCreationException if the factory throws or returns null, cannot be sent to the host,
     *                                the host has no such GPU, or the host is dead
     */
    Started startActor(int id, String name, int gpu, ActorFactory<?> factory);

    /**
     * Ends an actor: its thread finishes the method it runs, if any, then stops; later calls to it
     * fail with {@link ActorDiedException}. Returns without waiting; an unknown id is ignored.
     *
     * @param id the actor's id
     */
    void stopActor(int id);

    /**
     * What {@link #startActor} made.
     *
     * @param name            the actor's name
     * @param className       the binary name of the actor's class
     * @param deviceUuid      the UUID of the actor's GPU, or null without one
     * @param deviceFreeBytes the free memory of that GPU once the actor's factory returned (what the actor loaded is
     *                        already taken), 0 without a GPU
     */
    record Started(String name, String className, String deviceUuid, long deviceFreeBytes) {

        /**
         * An actor without a GPU.
         *
         * @param name      the actor's name
         * @param className the binary name of the actor's class
         */
        public Started(String name, String className) {
            this(name, className, null, 0);
        }
    }
}
