package dev.kiln.executor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tail of a child JVM's output: forwarded whole, kept bounded, escaped when shown. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class OutputTailTest {

    private static OutputTail pumped(byte[] bytes, ByteArrayOutputStream to) throws InterruptedException {
        OutputTail tail = new OutputTail();
        tail.pump("test-pump", new ByteArrayInputStream(bytes), to);
        tail.await(10_000);
        return tail;
    }

    @Test
    void forwardsEveryByteAndKeepsOnlyTheLastLinesEachCut() throws Exception {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 50; i++) {
            text.append("line ").append(i).append("\r\n");
        }
        text.append("x".repeat(100_000)).append('\n').append("last, without a newline");
        byte[] bytes = text.toString().getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream to = new ByteArrayOutputStream();
        OutputTail tail = pumped(bytes, to);
        assertArrayEquals(bytes, to.toByteArray(), "forwarded as it came");
        List<String> lines = tail.lines();
        assertEquals(OutputTail.LINES, lines.size());
        assertEquals("line 32", lines.getFirst());
        assertEquals("x".repeat(OutputTail.LINE_BYTES) + "...", lines.get(OutputTail.LINES - 2));
        assertEquals("last, without a newline", lines.getLast());
        assertTrue(tail.text().startsWith("\n    (32 earlier lines left out)\n    | line 32\n"), tail.text());
    }

    @Test
    void showsAnotherProcesssControlCharactersEscaped() throws Exception {
        OutputTail tail = pumped("Unrecognized VM option 'X'\n\u001b[2J\u0007cleared\n".getBytes(StandardCharsets.UTF_8),
                new ByteArrayOutputStream());
        String text = tail.text();
        assertTrue(text.contains("| Unrecognized VM option 'X'"), text);
        assertTrue(text.contains("| \\u001b[2J\\u0007cleared"), text);
        assertFalse(text.contains("\u001b") || text.contains("\u0007"), text);
    }

    @Test
    void saysWhenTheChildPrintedNothing() throws Exception {
        assertEquals("\n    (it printed nothing)", pumped(new byte[0], new ByteArrayOutputStream()).text());
    }
}
