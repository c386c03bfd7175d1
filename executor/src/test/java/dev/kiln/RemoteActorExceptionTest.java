package dev.kiln;

import dev.kiln.transport.RemoteError;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;
import java.util.logging.StreamHandler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RemoteActorExceptionTest {

    /** What a worker JVM sends: a trace printed there, with a cause and a module frame. */
    private static final String REMOTE_TRACE = """
            java.lang.IllegalStateException: model not loaded
            \tat app//com.acme.Model.forward(Model.java:42)
            \tat java.base/java.util.Objects.requireNonNull(Objects.java:259)
            \tat com.acme.Native.call(Native Method)
            \tat com.acme.Gen.run(Unknown Source)
            Caused by: java.io.FileNotFoundException: weights.bin
            \tat com.acme.Loader.open(Loader.java:7)
            \t... 3 more
            """;

    private static ActorTaskException remoteFailure() {
        RemoteError error = new RemoteError("model-1", "Model.forward", 3, "java.lang.IllegalStateException",
                "model not loaded", REMOTE_TRACE);
        return new ActorTaskException("model-1", "Model.forward", 3, new RemoteActorException(error));
    }

    @Test
    void javaUtilLoggingShowsTheRemoteFrames() {
        Logger logger = Logger.getLogger("dev.kiln.test.remote");
        logger.setUseParentHandlers(false);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        StreamHandler handler = new StreamHandler(bytes, new SimpleFormatter());
        logger.addHandler(handler);
        try {
            logger.log(Level.WARNING, "execution failed", remoteFailure());
            handler.flush();
        } finally {
            logger.removeHandler(handler);
        }
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("at com.acme.Model.forward(Model.java:42)"), out);
        assertTrue(out.contains("Caused by: dev.kiln.RemoteActorException: java.lang.IllegalStateException: model "
                + "not loaded"), out);
        assertTrue(out.contains("Caused by: dev.kiln.RemoteActorException: java.io.FileNotFoundException: "
                + "weights.bin"), out);
        assertTrue(out.contains("at com.acme.Loader.open(Loader.java:7)"), out);
    }

    @Test
    void theStackTraceAndCauseAreTheRemoteOnes() {
        RemoteActorException e = (RemoteActorException) remoteFailure().getCause();
        StackTraceElement[] frames = e.getStackTrace();
        assertEquals(4, frames.length);
        assertEquals("com.acme.Model", frames[0].getClassName());
        assertEquals("forward", frames[0].getMethodName());
        assertEquals("Model.java", frames[0].getFileName());
        assertEquals(42, frames[0].getLineNumber());
        assertEquals("java.util.Objects", frames[1].getClassName());
        assertTrue(frames[2].isNativeMethod());
        assertNull(frames[3].getFileName());
        RemoteActorException cause = assertInstanceOf(RemoteActorException.class, e.getCause());
        assertEquals("java.io.FileNotFoundException", cause.exceptionClass());
        assertEquals("weights.bin", cause.remoteMessage());
        assertEquals("com.acme.Loader", cause.getStackTrace()[0].getClassName());
        assertNull(cause.getCause());
        assertEquals("dev.kiln.RemoteActorException: java.lang.IllegalStateException: model not loaded", e.toString());
        assertEquals(REMOTE_TRACE, e.remoteStackTrace());
        StringWriter printed = new StringWriter();
        e.printStackTrace(new PrintWriter(printed));
        assertTrue(printed.toString().contains("at com.acme.Model.forward(Model.java:42)"), printed.toString());
    }
}
