package dev.kiln;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** The {@code dev.kiln} log records of a test, from a level up; close it to stop capturing. */
final class LogCapture extends Handler implements AutoCloseable {

    private final Level from;
    private final List<LogRecord> records = new CopyOnWriteArrayList<>();

    private LogCapture(Level from) {
        this.from = from;
        Logger.getLogger("dev.kiln").addHandler(this);
    }

    /**
     * @param from the lowest level kept
     * @return a capture, installed
     */
    static LogCapture from(Level from) {
        return new LogCapture(from);
    }

    /** @return the records so far */
    List<LogRecord> records() {
        return records;
    }

    /** @return the messages so far */
    List<String> messages() {
        return records.stream().map(LogRecord::getMessage).toList();
    }

    @Override
    public void publish(LogRecord r) {
        if (r.getLevel().intValue() >= from.intValue()) {
            records.add(r);
        }
    }

    @Override
    public void flush() {
    }

    @Override
    public void close() {
        Logger.getLogger("dev.kiln").removeHandler(this);
    }
}
