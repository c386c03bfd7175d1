package dev.kiln;

import dev.kiln.executor.ActorHandle;
import dev.kiln.executor.RemoteActor;
import dev.kiln.graph.ActorRef;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The actors of one runtime: their ids, names, handles (wherever they live), how each was made, and the GPU each
 * started on. A restart records a recreated actor under its old id, so {@link ActorRef}s reach the new incarnation.
 *
 * <p>Thread-safe: any thread may record and look up actors.
 */
final class ActorRegistry {

    /** Actor ids are unique across runtimes, so an actor of another runtime is never mistaken for one of ours. */
    private static final AtomicInteger ACTOR_IDS = new AtomicInteger();

    /** The runtime whose actors these are: the owner of their refs. */
    private final Kiln owner;
    /** The runtime's name, for messages. */
    private final String runtime;
    private final Map<String, Integer> names = new ConcurrentHashMap<>();
    private final Map<Integer, ActorHandle> handles = new ConcurrentHashMap<>();
    /** How each actor was made: a graph that restarts recreates its dead actors from these. */
    private final Map<Integer, ActorSpec> specs = new ConcurrentHashMap<>();
    /** The GPU of each actor that uses one, as its host reported it when the actor started. */
    private final Map<Integer, ActorDevice> devices = new ConcurrentHashMap<>();

    /**
     * @param owner   the runtime whose actors these are
     * @param runtime its name
     */
    ActorRegistry(Kiln owner, String runtime) {
        this.owner = owner;
        this.runtime = runtime;
    }

    /** @return a new actor id, unique across runtimes */
    static int newId() {
        return ACTOR_IDS.incrementAndGet();
    }

    /**
     * Reserves a name given in the actor's options.
     *
     * @param name the name
     * @param id   the actor's id
     * @throws IllegalArgumentException if the name is taken
     */
    void claimName(String name, int id) {
        if (names.putIfAbsent(name, id) != null) {
            throw new IllegalArgumentException("an actor named '" + name + "' exists in " + runtime
                    + "; actor names must be unique");
        }
    }

    /**
     * Frees a name whose actor could not be created.
     *
     * @param name the name
     * @param id   the actor's id
     */
    void releaseName(String name, int id) {
        names.remove(name, id);
    }

    /**
     * Records the name a host gave an actor created without one.
     *
     * @param name the name
     * @param id   the actor's id
     */
    void named(String name, int id) {
        names.put(name, id);
    }

    /**
     * Records an actor that started (again): its handle and its GPU.
     *
     * @param handle  the actor
     * @param options its options
     * @param started what its host made
     */
    void started(ActorHandle handle, ActorOptions options, ActorHost.Started started) {
        int id = handle.id();
        if (options.hasGpu()) {
            devices.put(id, new ActorDevice(options.gpu(), started.deviceUuid(), started.deviceFreeBytes()));
        }
        handles.put(id, handle);
    }

    /**
     * Records how an actor was made, to make it again.
     *
     * @param id   the actor's id
     * @param spec its factory, options, process and name
     */
    void made(int id, ActorSpec spec) {
        specs.put(id, spec);
    }

    /**
     * @param id an actor's id
     * @return how it was made, or null if it is not an actor of this runtime
     */
    ActorSpec spec(int id) {
        return specs.get(id);
    }

    /**
     * @param ref an actor's ref
     * @return its handle
     * @throws IllegalArgumentException if the actor belongs to another runtime
     */
    ActorHandle handle(ActorRef<?> ref) {
        ActorHandle a = ref.owner() == owner ? handles.get(ref.id()) : null;
        if (a == null) {
            throw new IllegalArgumentException("actor " + ref.name() + " does not belong to " + runtime);
        }
        return a;
    }

    /**
     * @param id an actor's id
     * @return its handle, or null if it is not an actor of this runtime
     */
    ActorHandle handle(int id) {
        return handles.get(id);
    }

    /** @return every actor's handle, live or dead */
    Collection<ActorHandle> handles() {
        return handles.values();
    }

    /**
     * @param id an actor's id
     * @return whether it lives in a worker JVM: what it receives and returns crosses JVMs
     */
    boolean inWorker(int id) {
        return handles.get(id) instanceof RemoteActor;
    }

    /**
     * @param id an actor's id
     * @return its GPU, or null for an actor without one
     */
    ActorDevice device(int id) {
        return devices.get(id);
    }

    /** @return whether an actor of this runtime uses a GPU */
    boolean usesGpus() {
        return !devices.isEmpty();
    }

    /**
     * @param id an actor's id
     * @return why the actor is dead (its thread ended, its worker JVM ended or was lost), or null while it lives
     */
    String deathOf(int id) {
        ActorHandle a = handles.get(id);
        return a == null ? "it is not an actor of " + runtime : a.deathReason();
    }

    /**
     * @param ids actors' ids
     * @return the dead ones among them, each as {@code "<name> (<why>)"}
     */
    List<String> deadActors(List<Integer> ids) {
        List<String> dead = new ArrayList<>();
        for (int id : ids) {
            String death = deathOf(id);
            if (death != null) {
                ActorSpec spec = specs.get(id);
                dead.add((spec != null ? spec.name() : "#" + id) + " (" + death + ")");
            }
        }
        return dead;
    }

    /** @return how many actors this runtime made */
    int size() {
        return handles.size();
    }

    /**
     * How an actor was made, to make it again.
     *
     * @param factory     its factory
     * @param options     its options
     * @param processName its child JVM's name ({@code worker-<id>} for {@link ActorOptions#process()}), or null
     * @param name        its final name
     */
    record ActorSpec(ActorFactory<?> factory, ActorOptions options, String processName, String name) {
    }

    /**
     * The GPU of an actor: its index in its JVM, UUID, and free memory once its factory returned.
     *
     * @param device    the device's index in the actor's JVM
     * @param uuid      the device's UUID
     * @param freeBytes its free memory once the actor's factory returned
     */
    record ActorDevice(int device, String uuid, long freeBytes) {
    }
}
