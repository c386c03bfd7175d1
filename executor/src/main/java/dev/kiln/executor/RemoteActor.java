package dev.kiln.executor;

import java.util.concurrent.atomic.AtomicReference;

/**
 * The driver's record of an actor that lives in a worker JVM: which worker, and which graph
 * holds it. The actor itself, its thread and its loops live in the worker. Thread-safe.
 */
public final class RemoteActor {

    private final int id;
    private final String name;
    private final RemoteHost worker;
    private final AtomicReference<Object> holder = new AtomicReference<>();
    private volatile String death;

    /**
     * @param id     the actor's id
     * @param name   the actor's name
     * @param worker the worker JVM hosting it
     */
    public RemoteActor(int id, String name, RemoteHost worker) {
        this.id = id;
        this.name = name;
        this.worker = worker;
    }

    /** @return the actor's id */
    public int id() {
        return id;
    }

    /** @return the actor's name */
    public String name() {
        return name;
    }

    /** @return the worker JVM hosting it */
    public RemoteHost worker() {
        return worker;
    }

    /** @return why the actor is dead (its worker ended, or a loop died of an error), or null while it lives */
    public String death() {
        String d = death;
        return d != null ? d : worker.death();
    }

    /** @param why why the actor died; the first reason is kept */
    public void died(String why) {
        if (death == null) {
            death = why;
        }
    }

    /** @return the graph that holds the actor, or null */
    public Object holder() {
        return holder.get();
    }

    /**
     * @param graph the compiling graph
     * @return null on success, else the graph that holds the actor
     */
    public Object hold(Object graph) {
        return holder.compareAndExchange(null, graph);
    }

    /** @param graph the graph that held the actor and let go of it */
    public void release(Object graph) {
        holder.compareAndSet(graph, null);
    }

    @Override
    public String toString() {
        return name + " in " + worker;
    }
}
