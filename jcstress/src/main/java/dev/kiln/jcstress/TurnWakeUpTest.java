package dev.kiln.jcstress;

import dev.kiln.executor.Turn;
import dev.kiln.transport.Waker;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * The end of another thread's turn at an actor against the thread that runs the actor, which is about to sleep: the
 * holder gives the turn back ({@link Turn#give()}) and signals the runner's {@link Waker} if the runner marked it
 * missed; the runner announces that it sleeps ({@link Waker#arm()}), then tries once more ({@link Turn#takeOrMark()}).
 * r1: the runner took the turn; r2: its announcement is still up afterwards (nobody woke it). A runner that did not get
 * the turn must have been woken.
 */
@JCStressTest
@Description("Turn.give + signal vs Waker.arm + Turn.takeOrMark: no lost wake-up")
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the runner took the turn after it was given back")
@Outcome(id = "1, 0", expect = FORBIDDEN, desc = "a signal for a turn the runner never missed")
@Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "the turn was still taken, and its holder woke the runner")
@Outcome(id = "0, 1", expect = FORBIDDEN, desc = "lost wake-up: the runner missed the turn and sleeps on")
@State
public class TurnWakeUpTest {

    private final Turn turn = new Turn();
    private final Waker runnerWaker = new Waker();

    public TurnWakeUpTest() {
        if (!turn.tryTake()) {
            throw new IllegalStateException("a new turn is free");
        }
    }

    /** The thread whose turn at the actor ends. */
    @Actor
    public void holder() {
        if (turn.give()) {
            runnerWaker.signal();
        }
    }

    /** The thread that runs the actor, about to park. */
    @Actor
    public void runner(II_Result r) {
        runnerWaker.arm();
        r.r1 = turn.takeOrMark() ? 1 : 0;
    }

    /** Whether the runner's announcement survived, that is nobody woke it. */
    @Arbiter
    public void after(II_Result r) {
        r.r2 = runnerWaker.isArmed() ? 1 : 0;
    }
}
