package dev.kiln.executor;

import dev.kiln.transport.Waker;

import java.util.Arrays;

/**
 * The heavy loops of one graph in one JVM that its threads take turns running: the loops of actors that share
 * threads ({@link dev.kiln.compiler.ExecutionPlan#mayShareThread}) whose executions take long enough
 * ({@link GraphLoop#isHeavy()}) to repay moving their work to whichever of those threads has nothing of its own to do. A pipeline whose stages cost
 * unequal times so uses every thread the plan gave it, wherever the plan put the heavy stages: with stages of 6, 1.5, 9
 * and 36 us on two threads, both threads run the 9 and 36 us stages, each when it is free.
 *
 * <p>The thread that runs an actor (its own, or the carrier it is lent to) offers a loop here when the loop turns heavy
 * and takes it back when it turns light again, stops, or the actor leaves the thread; every turn, that thread's
 * included, holds the actor's turn ({@code ActorThread}), so its methods still run one at a time and in order. Any
 * thread; the array is replaced, never changed.
 */
final class SharedLoops {

    private static final GraphLoop[] NONE = {};

    private volatile GraphLoop[] loops = NONE;
    /** The wakers of the threads that take turns. */
    private final Waker[] takers;

    /** @param takers the wakers of the threads that take turns (each runs a loop of the graph for its own actor) */
    SharedLoops(Waker[] takers) {
        this.takers = takers.clone();
    }

    /** @return the wakers of the threads that take turns, to be woken when an offered loop has work */
    Waker[] takers() {
        return takers;
    }

    /** @param loop a loop the other threads may now take turns running */
    synchronized void add(GraphLoop loop) {
        GraphLoop[] l = Arrays.copyOf(loops, loops.length + 1);
        l[l.length - 1] = loop;
        loops = l;
    }

    /** @param loop a loop only its actor's thread runs from now on; nothing if it is not here */
    synchronized void remove(GraphLoop loop) {
        GraphLoop[] l = loops;
        for (int i = 0; i < l.length; i++) {
            if (l[i] == loop) {
                GraphLoop[] rest = new GraphLoop[l.length - 1];
                System.arraycopy(l, 0, rest, 0, i);
                System.arraycopy(l, i + 1, rest, i, l.length - i - 1);
                loops = rest;
                return;
            }
        }
    }

    /**
     * Wakes the threads that take turns and sleep, but the caller's: a turn just ended with more of its loop's
     * executions ready, which another thread can start on while the caller runs something else.
     *
     * @param own the calling thread's waker
     */
    void wakeOthers(Waker own) {
        for (Waker w : takers) {
            if (w != own) {
                w.signal();
            }
        }
    }

    /** @return the offered loops now, a snapshot not to be changed */
    GraphLoop[] snapshot() {
        return loops;
    }
}
