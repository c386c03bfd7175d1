package dev.kiln.executor;

import dev.kiln.ActorDiedException;
import dev.kiln.ActorTaskException;
import dev.kiln.graph.Method0;
import dev.kiln.graph.Method1;
import dev.kiln.graph.Method3;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs {@link DynamicCall}s on the test thread. */
@Timeout(30)
class DynamicCallTest {

    static final class Box {
        int value = 7;

        int get() {
            return value;
        }

        String three(String a, Integer b, Object c) {
            return a + b + c;
        }
    }

    private static Throwable failure(DynamicCall<?> call) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> call.future().get(1, TimeUnit.SECONDS));
        return e.getCause();
    }

    @Test
    void completesWithTheResult() throws Exception {
        Box box = new Box();
        Method0<Box, Integer> get = Box::get;
        DynamicCall<Integer> call = new DynamicCall<>(get, 0, box, "box", 0, new Object[] {});
        call.run();
        assertEquals(7, call.future().get(1, TimeUnit.SECONDS));
        Method3<Box, String, Integer, Object, String> three = Box::three;
        DynamicCall<String> call3 = new DynamicCall<>(three, 3, box, "box", 1, new Object[] {"a", 2, null});
        call3.run();
        assertEquals("a2null", call3.future().get(1, TimeUnit.SECONDS));
    }

    @Test
    void anExceptionBecomesAnActorTaskException() {
        Method1<Box, Integer, Integer> divide = (b, x) -> b.value / x;
        DynamicCall<Integer> call = new DynamicCall<>(divide, 1, new Box(), "box", 12, new Object[] {0});
        call.run();
        ActorTaskException e = assertInstanceOf(ActorTaskException.class, failure(call));
        assertEquals("box", e.actor());
        assertEquals(12, e.sequence());
        assertInstanceOf(ArithmeticException.class, e.getCause());
    }

    @Test
    void aVirtualMachineErrorFailsTheCallAndPropagates() {
        Method1<Box, Integer, Integer> overflow = (b, x) -> {
            throw new StackOverflowError("x" + x);
        };
        DynamicCall<Integer> call = new DynamicCall<>(overflow, 1, new Box(), "box", 0, new Object[] {1});
        StackOverflowError thrown = assertThrows(StackOverflowError.class, call::run);
        ActorDiedException e = assertInstanceOf(ActorDiedException.class, failure(call));
        assertSame(thrown, e.getCause());
    }

    @Test
    void abandonFailsWithActorDiedException() {
        Method0<Box, Integer> get = Box::get;
        DynamicCall<Integer> stopped = new DynamicCall<>(get, 0, new Box(), "box", 0, new Object[] {});
        stopped.abandon("box", null);
        ActorDiedException e1 = assertInstanceOf(ActorDiedException.class, failure(stopped));
        assertNull(e1.getCause());
        assertTrue(e1.getMessage().contains("stopped"), e1.getMessage());

        DynamicCall<Integer> died = new DynamicCall<>(get, 0, new Box(), "box", 0, new Object[] {});
        OutOfMemoryError cause = new OutOfMemoryError("test");
        died.abandon("box", cause);
        assertSame(cause, assertInstanceOf(ActorDiedException.class, failure(died)).getCause());
    }
}
