package dev.kiln.executor;

import dev.kiln.compiler.IdleMode;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.DeviceOps;

import java.io.Serializable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

/**
 * Hosts one in-process actor on a thread of its own for the actor's whole life. The thread
 * creates the actor, then runs a duty cycle: the dynamic-call mailbox, and the
 * {@link GraphLoop} of the compiled graph that holds the actor, if any. So every method of an
 * actor, compiled or dynamic, runs on the same thread and sees the same thread-local state. An actor
 * placed on a GPU has it bound to the thread ({@link ActorGpu}) before its factory runs, for the
 * thread's whole life.
 *
 * <p>{@link #hold}, {@link #release}, {@link #attach}, {@link #submit}, {@link #call}, {@link #stop} and the
 * queries may be called from any thread; everything else runs on the actor's thread.
 */
public final class ActorThread implements ActorHandle {

    private final int id;
    private volatile String name;
    private final Waker waker = new Waker();
    private final ConcurrentLinkedQueue<Runnable> mailbox = new ConcurrentLinkedQueue<>();
    private final AtomicReference<Object> holder = new AtomicReference<>();
    private final CompletableFuture<Object> created = new CompletableFuture<>();
    private final Thread thread;
    private volatile GraphLoop attached;
    private volatile boolean stopping;
    private volatile Throwable death;
    private volatile ActorGpu gpu;

    /**
     * Starts the actor's thread, which creates the actor with {@code factory}.
     *
     * @param id      the actor's id
     * @param name    the actor's name (the thread is named {@code kiln-actor-<name>})
     * @param factory creates the actor; may throw
     */
    public ActorThread(int id, String name, Supplier<Object> factory) {
        this(id, name, null, -1, factory);
    }

    /**
     * Starts the actor's thread, which binds its GPU ({@link ActorGpu}) and then creates the actor with
     * {@code factory}; a failure to bind the GPU fails the creation as the factory would.
     *
     * @param id      the actor's id
     * @param name    the actor's name (the thread is named {@code kiln-actor-<name>})
     * @param ops     the runtime's device operations, or null for an actor without a GPU
     * @param device  the actor's device, if {@code ops} is given
     * @param factory creates the actor; may throw
     */
    public ActorThread(int id, String name, DeviceOps ops, int device, Supplier<Object> factory) {
        this.id = id;
        this.name = name;
        Supplier<Object> create = ops == null ? factory : () -> {
            gpu = ActorGpu.bind(ops, device);
            return factory.get();
        };
        this.thread = Thread.ofPlatform().name("kiln-actor-" + name).daemon(true).unstarted(() -> run(create));
        thread.start();
    }

    /**
     * The name of an actor created without one: its class's simple name in lower camel case and its id.
     *
     * @param type the actor's class
     * @param id   the actor's id
     * @return e.g. {@code tokenizer-3}
     */
    public static String defaultName(Class<?> type, int id) {
        String simple = type.getSimpleName().isEmpty() ? "actor" : type.getSimpleName();
        return Character.toLowerCase(simple.charAt(0)) + simple.substring(1) + "-" + id;
    }

    @Override
    public int id() {
        return id;
    }

    @Override
    public String name() {
        return name;
    }

    /**
     * Renames the actor (and its thread) once its class is known; before the actor is published.
     *
     * @param newName the name
     */
    public void rename(String newName) {
        this.name = newName;
        thread.setName("kiln-actor-" + newName);
    }

    /** @return the actor's waker, signalled by the channels it waits on */
    public Waker waker() {
        return waker;
    }

    /** @return completes with the actor instance, or exceptionally with the factory's exception */
    public CompletableFuture<Object> created() {
        return created;
    }

    /** @return the actor's GPU, or null for an actor without one (or before its thread bound it) */
    public ActorGpu gpu() {
        return gpu;
    }

    /** @return the error the actor died of, or null while it lives */
    public Throwable death() {
        return death;
    }

    @Override
    public String deathReason() {
        Throwable t = death;
        return t != null ? "actor " + name + " died of " + t : thread.isAlive() ? null : "the thread of actor " + name
                + " ended";
    }

    /** @return whether the thread is still running */
    public boolean isAlive() {
        return thread.isAlive();
    }

    @Override
    public Object holder() {
        return holder.get();
    }

    @Override
    public Object hold(Object graph) {
        return holder.compareAndExchange(null, graph);
    }

    @Override
    public void release(Object graph) {
        holder.compareAndSet(graph, null);
    }

    /**
     * Starts running {@code loop} on the actor's thread; the actor must be held by its graph.
     * The thread leaves the loop, and frees the actor, once {@link GraphLoop#stop()} was called.
     *
     * @param loop the actor's part of a compiled graph
     */
    public void attach(GraphLoop loop) {
        attached = loop;
        waker.signal();
        LockSupport.unpark(thread);
    }

    /**
     * Queues a dynamic call; it runs on the actor's thread.
     *
     * @param call the call
     * @return false if the actor is dead or stopped (the call was not queued)
     */
    public boolean submit(Runnable call) {
        if (death != null || stopping) {
            return false;
        }
        mailbox.add(call);
        if ((death != null || stopping) && mailbox.remove(call)) {
            // The thread may have drained its mailbox for the last time before our add: take the
            // call back. If it is gone, the thread polled it and runs or abandons it.
            return false;
        }
        waker.signal();
        return true;
    }

    /** Queues the call in the mailbox; a call the actor cannot take any more fails at once. */
    @Override
    public <R> CompletableFuture<R> call(Serializable method, int arity, Object[] args, long number) {
        DynamicCall<R> call = new DynamicCall<>(method, arity, created.getNow(null), name, number, args);
        if (!submit(call)) {
            call.abandon(name, death);
        }
        return call.future();
    }

    /** Wakes the thread, e.g. after stopping its loop. */
    public void wake() {
        LockSupport.unpark(thread);
    }

    /** Asks the thread to end after the method it is running; does not wait. */
    @Override
    public void requestStop() {
        stopping = true;
        wake();
    }

    /**
     * Ends the thread: it finishes the method it is running, then exits.
     *
     * @param timeoutMillis how long to wait for it
     * @return whether the thread ended in time (if not, it was interrupted)
     */
    public boolean stop(long timeoutMillis) {
        requestStop();
        try {
            thread.join(timeoutMillis);
            if (thread.isAlive()) {
                thread.interrupt();
                thread.join(Math.min(timeoutMillis, 1000));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return !thread.isAlive();
    }

    private void run(Supplier<Object> factory) {
        Object instance;
        try {
            instance = factory.get();
            created.complete(instance);
        } catch (Throwable t) {
            death = t;
            created.completeExceptionally(t);
            unbindGpu();
            return;
        }
        KilnIdleStrategy mailboxIdle = new KilnIdleStrategy(IdleMode.BLOCKING, waker);
        KilnIdleStrategy loopIdle = null;
        GraphLoop current = null;
        try {
            while (!stopping) {
                int work = drainMailbox();
                GraphLoop loop = attached;
                if (loop != current) {
                    current = loop;
                    if (loop != null) {
                        loop.bind(instance);
                        loopIdle = new KilnIdleStrategy(loop.idle(), waker, loop);
                    }
                }
                if (loop != null) {
                    if (loop.isStopped()) {
                        loop.freeOwned();
                        attached = null;
                        current = null;
                        holder.compareAndSet(loop.owner(), null);
                        work++;
                    } else {
                        work += loop.doWork();
                    }
                }
                (loop != null ? loopIdle : mailboxIdle).idle(work);
            }
        } catch (Throwable t) {
            death = t;
            GraphLoop loop = attached;
            if (loop != null) {
                loop.died(t);
            }
        } finally {
            GraphLoop loop = attached;
            if (loop != null && death == null) {
                loop.died(new IllegalStateException("actor " + name + " was stopped"));
            }
            if (loop != null) {
                loop.freeOwned();
            }
            Runnable call;
            while ((call = mailbox.poll()) != null) {
                if (call instanceof DynamicCall<?> dc) {
                    dc.abandon(name, death);
                }
            }
            unbindGpu();
        }
    }

    /** Ends the thread's GPU binding (its stream); a failure here is not worth more than a log line. */
    private void unbindGpu() {
        ActorGpu g = gpu;
        if (g != null) {
            try {
                g.unbind();
            } catch (RuntimeException e) {
                System.getLogger("dev.kiln").log(System.Logger.Level.WARNING, () -> "actor " + name
                        + " could not release its GPU stream: " + e);
            }
        }
    }

    private int drainMailbox() {
        int work = 0;
        Runnable call;
        // Once asked to stop, leave the rest queued: the thread's exit fails it with ActorDiedException.
        while (!stopping && (call = mailbox.poll()) != null) {
            call.run();
            work++;
        }
        return work;
    }

    @Override
    public String toString() {
        return "ActorThread(" + name + ")";
    }
}
