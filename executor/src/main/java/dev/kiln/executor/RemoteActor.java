package dev.kiln.executor;

/**
 * The driver's record of an actor that lives in a worker JVM: which worker, and which graphs
 * hold it. The actor itself, its thread and its loops live in the worker. Thread-safe.
 */
public final class RemoteActor {

    private final int id;
    private final String name;
    private final RemoteHost worker;
    private final Holders holders = new Holders();
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

    /** @return the graphs that hold the actor */
    public Holders holders() {
        return holders;
    }

    /**
     * @param graph     the compiling graph
     * @param exclusive whether it needs the actor to itself (see {@link Holders})
     * @return null on success, else a graph that holds the actor and is in the way
     */
    public Object hold(Object graph, boolean exclusive) {
        return holders.hold(graph, exclusive);
    }

    /** @param graph the graph that held the actor and let go of it */
    public void release(Object graph) {
        holders.release(graph);
    }

    @Override
    public String toString() {
        return name + " in " + worker;
    }
}
