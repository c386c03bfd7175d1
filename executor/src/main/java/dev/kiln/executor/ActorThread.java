package dev.kiln.executor;

import dev.kiln.compiler.IdleMode;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.Waker;
import dev.kiln.transport.gpu.DeviceOps;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

/**
 * Hosts one in-process actor on a thread of its own for the actor's whole life. The thread
 * creates the actor, then runs a duty cycle: the dynamic-call mailbox, and the
 * {@link GraphLoop} of each compiled graph that holds the actor ({@link Holders}: several graphs may,
 * their loops taking turns, each batch of one graph's executions between two of another's). So every method of an
 * actor, compiled or dynamic, runs one at a time, in order, each seeing what the previous one wrote. An actor
 * placed on a GPU has it bound to the thread ({@link ActorGpu}) before its factory runs, for the
 * thread's whole life.
 *
 * <p><b>Sharing a thread.</b> A graph's plan may put several actors of one JVM on one thread
 * ({@code ExecutionPlan.ActorSchedule.carrier()}): the carrier's thread then runs the loops and the mailboxes of
 * its guests too, one duty cycle after the other, so a hand-off between actors on that thread is a plain write
 * and read, not a wake-up. A guest's own thread hands its actor over ({@link #attach(GraphLoop, ActorThread, int)}):
 * it drains its mailbox once more, queues itself at the carrier, and parks until the carrier gives it back, which
 * the carrier does when the guest's loop left the graph (or the guest is stopped, or the carrier ends). Between
 * those points only the carrier's thread touches the actor, so its methods still run one at a time and in order,
 * but on the carrier's thread: state kept in a {@code ThreadLocal} does not carry over.
 *
 * <p><b>Taking turns.</b> Where the plan has actors share threads, a loop whose executions are long
 * ({@link GraphLoop#isHeavy()}) is offered to the graph's other threads ({@link SharedLoops}): a thread with nothing of
 * its own to do takes a turn at it (a batch, which for an offered loop goes on while its executions are ready, up to
 * {@code GraphLoop.HOLD_NS}), so a heavy stage does not hold back the stages the plan put beside it
 * while another thread of the graph idles. Every turn, including those of the thread that runs the actor, holds the
 * actor's turn, so its methods still run one at a time and in order, each turn seeing what the previous one wrote; its
 * mailbox stays with the thread that runs it. Its channels fence and wake as between threads while it is offered
 * ({@link GraphLoop#offer(boolean)}).
 *
 * <p>{@link #hold}, {@link #release}, {@link #attach}, {@link #submit}, {@link #call}, {@link #wake}, {@link #stop}
 * and the queries may be called from any thread; everything else runs on the actor's thread (or its carrier's, or,
 * for a turn at an offered loop, the thread that holds its {@link Turn}).
 */
public final class ActorThread implements ActorHandle {

    private final int id;
    private volatile String name;
    private final Waker waker = new Waker();
    private final ConcurrentLinkedQueue<Runnable> mailbox = new ConcurrentLinkedQueue<>();
    private final Holders holders = new Holders();
    private final CompletableFuture<Object> created = new CompletableFuture<>();
    private final Thread thread;
    /** Loops attached to run on this thread, not yet taken up by its duty cycle. */
    private final ConcurrentLinkedQueue<GraphLoop> attaching = new ConcurrentLinkedQueue<>();
    /** The loops this thread runs for its own actor; this thread only. */
    private final ArrayList<GraphLoop> loops = new ArrayList<>();
    /** The loop a carrier is to run for this actor (its graph holds it exclusively), or null. */
    private volatile GraphLoop lentLoop;
    /** The thread that runs {@link #lentLoop}; set before it. */
    private volatile ActorThread carrier;
    /** Where {@link #lentLoop} runs among its carrier's guests: its schedule's position in the plan; set before it. */
    private volatile int order;
    /** True from the moment this actor's thread hands the actor to its carrier until the carrier gives it back. */
    private volatile boolean lent;
    /** The actor, once created; read by a carrier that runs it. */
    private volatile Object instance;
    /**
     * Guests attached to run on this thread and not given back yet, whether or not they arrived: while there are
     * any, this thread is not lent to another carrier (a graph that takes this actor as a guest waits for them).
     */
    private final java.util.concurrent.atomic.AtomicInteger lentGuests = new java.util.concurrent.atomic.AtomicInteger();
    /** Guests whose threads handed their actor to this thread, not yet taken up by its duty cycle. */
    private final ConcurrentLinkedQueue<ActorThread> arriving = new ConcurrentLinkedQueue<>();
    /** The guests this thread runs; this thread only. */
    private final ArrayList<ActorThread> guests = new ArrayList<>();
    /** Whether {@link #guests} changed since the thread chose how to idle; this thread only. */
    private boolean guestsChanged;
    private volatile boolean stopping;
    private volatile Throwable death;
    private volatile ActorGpu gpu;
    /** While a loop of this actor is offered to other threads ({@link #offered}): who runs its steps. */
    private final Turn turn = new Turn();
    /**
     * How many of this actor's loops are offered to other threads ({@link GraphLoop#isOffered()}); written by the
     * thread that runs the actor, holding its turn or before anyone else can take one.
     */
    private volatile int offered;

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

    /**
     * @return whether the actor's methods may still run: its thread lives, or a live carrier it was lent to has not
     *         given it back yet (the guest's own thread may have ended first, when {@link #stop} had to interrupt it)
     */
    public boolean isRunning() {
        if (thread.isAlive()) {
            return true;
        }
        ActorThread c = carrier;
        return lent && c != null && c != this && c.isAlive();
    }

    @Override
    public Holders holders() {
        return holders;
    }


    /**
     * Starts running {@code loop} on the actor's thread, beside the loops of other graphs that hold the actor; the
     * actor must be held by the loop's graph. The thread leaves the loop, and its graph lets go of the actor, once
     * {@link GraphLoop#stop()} was called.
     *
     * @param loop the actor's part of a compiled graph
     */
    public void attach(GraphLoop loop) {
        attaching.add(loop);
        waker.signal();
        LockSupport.unpark(thread);
    }

    /**
     * Starts running {@code loop} on the thread of {@code on}, a carrier the actor shares with other actors of the
     * graph (see the class description); the loop's graph must hold the actor exclusively. The loop is left, the
     * actor freed and given back to its own thread, once {@link GraphLoop#stop()} was called.
     *
     * @param loop  the actor's part of a compiled graph
     * @param on    the thread that runs it: this (as {@link #attach(GraphLoop)}), or a carrier that runs its own loop
     *              of the same graph
     * @param order the schedule's position in the plan: the carrier runs its guests' loops in this order, after its
     *              own, so that a value handed down a chain of guests moves through all of them in one duty cycle
     */
    public void attach(GraphLoop loop, ActorThread on, int order) {
        if (on == this) {
            attach(loop);
            return;
        }
        on.lentGuests.incrementAndGet();
        carrier = on;
        this.order = order;
        lentLoop = loop;
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
        ActorThread c = carrier;
        if (c != null && c != this) {
            c.waker.signal(); // lent: the carrier drains this mailbox (or will, once it took this actor up)
        }
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

    /** Wakes the thread, and the carrier it is lent to, e.g. after stopping its loop. */
    public void wake() {
        LockSupport.unpark(thread);
        ActorThread c = carrier;
        if (c != null && c != this) {
            LockSupport.unpark(c.thread);
        }
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
            this.instance = instance;
            created.complete(instance);
        } catch (Throwable t) {
            death = t;
            created.completeExceptionally(t);
            unbindGpu();
            return;
        }
        KilnIdleStrategy mailboxIdle = new KilnIdleStrategy(IdleMode.BLOCKING, waker);
        KilnIdleStrategy idle = mailboxIdle;
        try {
            while (!stopping) {
                int work = 0;
                boolean changed = false;
                boolean turns = offered != 0;
                if (!turns || turn.takeOrMark()) {
                    try {
                        work += drainMailbox();
                        if (lentLoop != null && lentGuests.get() == 0 && !turns) {
                            lend(carrier);
                            continue;
                        }
                        GraphLoop arrived;
                        while ((arrived = attaching.poll()) != null) {
                            arrived.bind(instance);
                            loops.add(arrived);
                            changed = true;
                            work++;
                        }
                        for (int i = 0; i < loops.size(); i++) {
                            GraphLoop loop = loops.get(i);
                            if (loop.isStopped()) {
                                withdraw(loop);
                                loop.freeOwned();
                                loops.remove(i--);
                                holders.release(loop.owner());
                                changed = true;
                                work++;
                            } else {
                                work += loop.doWork();
                                if (loop.shared != null && loop.isHeavy() != loop.isOffered()) {
                                    if (!turns) {
                                        // nobody else takes a turn before the offer below (a thread that kept an old
                                        // offer of this actor may hold the turn a moment, to find it withdrawn)
                                        turn.await();
                                        turns = true;
                                    }
                                    offerOrWithdraw(loop);
                                }
                            }
                        }
                    } finally {
                        if (turns) {
                            turn.give();
                        }
                    }
                }
                work += runGuests();
                if (work == 0) {
                    work += takeTurns();
                }
                if (changed || guestsChanged) {
                    guestsChanged = false;
                    idle = idleStrategy(mailboxIdle);
                }
                idle.idle(work);
            }
        } catch (Throwable t) {
            death = t;
        } finally {
            GraphLoop late;
            while ((late = attaching.poll()) != null) {
                loops.add(late);
            }
            Throwable cause = death != null ? death : new IllegalStateException("actor " + name + " was stopped");
            if (offered != 0) {
                turn.await();
                loops.forEach(this::withdraw);
                turn.give();
            }
            for (GraphLoop loop : loops) {
                loop.died(cause);
                loop.freeOwned();
            }
            GraphLoop notLent = lentLoop;
            if (notLent != null && !lent) {
                // attached to a carrier, but this thread ended before it handed the actor over
                lentLoop = null;
                carrier.lentGuests.decrementAndGet();
                carrier = this;
                notLent.died(cause);
            }
            giveBackAll();
            Runnable call;
            while ((call = mailbox.poll()) != null) {
                if (call instanceof DynamicCall<?> dc) {
                    dc.abandon(name, death);
                }
            }
            unbindGpu();
        }
    }

    /**
     * How the thread idles while it runs {@code own}: as its loop says when it runs one (sleeping in that loop's
     * cross-process channel when it waits on one); with several, as the first says, but never longer than
     * BACKOFF's parks when one of them waits on channels of other processes, whose peers cannot wake this thread.
     * Where none does, every wait ends with a signal, and BACKOFF parks for its longest period at once (with one
     * loop, the loop says so of each wait: it declines to sleep in an in-process channel).
     */
    private KilnIdleStrategy idleFor(ArrayList<GraphLoop> own) {
        GraphLoop first = own.getFirst();
        if (own.size() == 1) {
            return new KilnIdleStrategy(first.idle(), waker, first, false);
        }
        boolean signalled = own.stream().noneMatch(GraphLoop::crossesProcesses); // guests never cross (ThreadPlanner)
        IdleMode mode = first.idle();
        if (!signalled && mode == IdleMode.BLOCKING) {
            mode = IdleMode.BACKOFF;
        }
        return new KilnIdleStrategy(mode, waker, null, signalled);
    }

    /**
     * How the thread idles: as its own loops say ({@link #idleFor}), else, running only guests (its own loop left
     * first), as the first guest's loop says, else (no loop) blocked until a call or a loop arrives.
     */
    private KilnIdleStrategy idleStrategy(KilnIdleStrategy mailboxIdle) {
        return !loops.isEmpty() ? idleFor(loops)
                : !guests.isEmpty() ? new KilnIdleStrategy(guests.getFirst().lentLoop.idle(), waker, null, true)
                : mailboxIdle;
    }

    /**
     * Hands this actor to {@code to}, which runs its loop and its mailbox, and waits until it gives the actor back:
     * its loop left the graph, this actor was asked to stop, or the carrier ended. Only this actor's thread.
     */
    private void lend(ActorThread to) {
        drainMailbox(); // the last calls on this thread; later ones are the carrier's
        lent = true;
        to.arriving.add(this);
        to.waker.signal();
        LockSupport.unpark(to.thread);
        while (lent) {
            if (stopping) {
                to.wake(); // the carrier ends this actor's loop and gives it back
            }
            if (!to.isAlive() && to.arriving.remove(this)) {
                reclaim(); // the carrier ended before it took this actor up
                return;
            }
            // Timed only to notice a carrier that ended: the carrier unparks this thread when it gives the actor back.
            LockSupport.parkNanos(this, 10_000_000);
            if (Thread.interrupted() && stopping) {
                // stop() gave up waiting for the carrier (it is inside a long method of this actor): leave, and
                // leave the loop to the carrier. Another interrupt (one a dynamic call left set) is dropped.
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Takes back a lent actor whose carrier never ran it: its graph lost the carrier, so the loop is over. */
    private void reclaim() {
        GraphLoop loop = lentLoop;
        lentLoop = null;
        carrier.lentGuests.decrementAndGet();
        carrier = this;
        lent = false;
        if (loop != null) {
            loop.stop();
            holders.release(loop.owner());
        }
    }

    /**
     * One duty cycle of every guest: takes up newly arrived ones, then runs each guest's mailbox and loop, and gives
     * back those whose loop left the graph or who were asked to stop. A guest's error is the guest's death, not
     * this thread's.
     *
     * @return the work done
     */
    private int runGuests() {
        int work = 0;
        ActorThread g;
        while ((g = arriving.poll()) != null) {
            int at = guests.size();
            while (at > 0 && guests.get(at - 1).order > g.order) {
                at--;
            }
            guests.add(at, g);
            g.lentLoop.bind(g.instance);
            guestsChanged = true;
            work++;
        }
        for (int i = 0; i < guests.size(); i++) {
            g = guests.get(i);
            boolean turns = g.offered != 0;
            if (turns && !g.turn.takeOrMark()) {
                continue; // another thread takes a turn at it now, and signals this one when done
            }
            GraphLoop loop = g.lentLoop;
            try {
                if (g.stopping) {
                    Throwable why = g.death;
                    g.withdraw(loop);
                    loop.died(why != null ? why : new IllegalStateException("actor " + g.name + " was stopped"));
                    loop.freeOwned();
                    g.giveBack(false);
                    guests.remove(i--);
                    guestsChanged = true;
                    work++;
                    continue;
                }
                work += g.drainMailbox();
                if (loop.isStopped()) {
                    g.withdraw(loop);
                    loop.freeOwned();
                    g.giveBack(true);
                    guests.remove(i--);
                    guestsChanged = true;
                    work++;
                } else {
                    work += loop.doWork();
                    if (turns && loop.endedFull()) {
                        loop.shared.wakeOthers(waker);
                    }
                    if (loop.shared != null && loop.isHeavy() != turns) {
                        g.offerOrWithdraw(loop); // on: taken by others only after this thread is done with it
                    }
                }
            } catch (Throwable t) {
                g.death = t;
                g.stopping = true;
                g.withdraw(loop);
                loop.died(t);
                loop.freeOwned();
                g.giveBack(false);
                guests.remove(i--);
                guestsChanged = true;
                work++;
            } finally {
                if (turns) {
                    g.turn.give();
                }
            }
        }
        return work;
    }

    /**
     * Offers a loop of this actor that turned heavy to the other threads of its graph, or takes back one that turned
     * light; by the thread that runs the actor, which holds its turn or (an offer) runs it alone until the offer.
     */
    private void offerOrWithdraw(GraphLoop loop) {
        if (loop.isOffered()) {
            withdraw(loop);
        } else {
            loop.offer(true);
            offered++;
        }
    }

    /** Takes {@code loop} back from the other threads of its graph, if offered; holding this actor's turn. */
    private void withdraw(GraphLoop loop) {
        if (loop != null && loop.isOffered()) {
            loop.offer(false);
            offered--;
        }
    }

    /**
     * A turn at each offered loop of the graphs this thread runs a loop of, that no thread runs now and that is not
     * this thread's to run anyway: a batch of it ({@code GraphLoop.HOLD_NS}); called when this thread has nothing of its
     * own to do.
     *
     * @return the work done
     */
    private int takeTurns() {
        int work = 0;
        for (int i = 0; i < loops.size(); i++) {
            GraphLoop own = loops.get(i);
            SharedLoops shared = own.shared;
            if (shared != null && !own.isStopped()) {
                for (GraphLoop l : shared.snapshot()) {
                    ActorThread a = l.host;
                    if (a != this && a.carrier != this && a.turn.tryTake()) {
                        work += a.takeTurn(l, shared, waker);
                    }
                }
            }
        }
        return work;
    }

    /**
     * One turn at {@code loop} of this actor, whose turn the calling thread took: a batch of it, if it is still
     * offered in {@code shared}. Gives the turn back, and signals the thread that runs this actor if that one missed
     * its turn meanwhile or has something to clean up (the loop stopped, the actor died).
     */
    private int takeTurn(GraphLoop loop, SharedLoops shared, Waker by) {
        ActorThread c = carrier == null ? this : carrier;
        boolean wake = false;
        int work = 0;
        try {
            if (loop.isOffered() && loop.shared == shared && !stopping && !loop.isStopped()) {
                work = loop.doWork();
                if (loop.endedFull()) {
                    shared.wakeOthers(by);
                }
                wake = loop.isStopped();
            }
        } catch (Throwable t) {
            death = t; // the thread that runs this actor stops its loops, as if it had thrown there
            stopping = true;
            wake = true;
        } finally {
            wake |= turn.give();
            if (wake) {
                c.waker.signal();
            }
        }
        return work;
    }

    /**
     * Gives this guest back to its own thread, called by its carrier after the last touch of its loop.
     *
     * @param free whether its graph lets go of the actor (its loop left); false when the actor died or was stopped,
     *             which keeps it held by the graph it died in
     */
    private void giveBack(boolean free) {
        GraphLoop loop = lentLoop;
        lentLoop = null;
        carrier.lentGuests.decrementAndGet();
        carrier = this;
        lent = false;
        LockSupport.unpark(thread);
        if (free && loop != null) {
            holders.release(loop.owner());
        }
    }

    /**
     * The carrier ends: its guests go back to their own threads, their loops stopped (their graph learns of it
     * from the carrier's own loop, which died).
     */
    private void giveBackAll() {
        ActorThread g;
        while ((g = arriving.poll()) != null) {
            guests.add(g);
        }
        for (ActorThread guest : guests) {
            GraphLoop loop = guest.lentLoop;
            boolean turns = guest.offered != 0;
            if (turns) {
                guest.turn.await(); // another thread's turn at it ends with its batch
                guest.withdraw(loop);
            }
            if (loop != null) {
                loop.stop();
                try {
                    loop.freeOwned();
                } catch (RuntimeException e) {
                    // the guest's tensors leak; its graph is failing already
                }
            }
            guest.giveBack(true);
            if (turns) {
                guest.turn.give();
            }
        }
        guests.clear();
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
