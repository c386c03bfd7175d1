package dev.kiln.jcstress;

import dev.kiln.executor.SingleWriter;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * The compiled graph's driver hand-off ({@link SingleWriter}): the owner submits on its lock-free path while a second
 * thread arrives and moves the graph to its locked path. Each does a plain read-modify-write of one counter, as the
 * driver does of its submitted sequence: the two must never overlap, and the second must see what the owner wrote
 * before it left.
 */
@JCStressTest
@Outcome(id = "0, 1", expect = ACCEPTABLE, desc = "the owner went first on its lock-free path; the second thread "
        + "waited for it and saw its write")
@Outcome(id = "-1, 0", expect = ACCEPTABLE, desc = "the second thread revoked first: the owner stayed off its path")
@Outcome(id = "0, 0", expect = FORBIDDEN, desc = "both inside at once, or the owner's write was not seen")
@Outcome(id = "1, 0", expect = FORBIDDEN, desc = "the owner entered after the path was revoked")
@State
public class DriverHandOffTest {

    private final SingleWriter gate = new SingleWriter();
    /** Plain, like the driver's sequence: the gate alone must order the two threads' accesses. */
    private int submitted;

    /** The owner: submits on the lock-free path when it may; r1 is the sequence it took, -1 if it was refused. */
    @Actor
    public void owner(II_Result r) {
        if (gate.owned() && gate.enter()) {
            try {
                int s = submitted;
                submitted = s + 1;
                r.r1 = s;
            } finally {
                gate.exit();
            }
        } else {
            r.r1 = -1;
        }
    }

    /** A second thread: closes the lock-free path for good (the driver then takes its lock), then submits. */
    @Actor
    public void second(II_Result r) {
        gate.share(() -> { });
        int s = submitted;
        submitted = s + 1;
        r.r2 = s;
    }
}
