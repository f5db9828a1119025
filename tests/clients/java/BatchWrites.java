// pgjdbc (Debian's libpostgresql-jdbc-java) through the sfpg proxy: a batch of updates
// and an insert under setAutoCommit(false), then commit. Run in source-file mode by
// tests/proxy_clients.rs; the JDBC URL, user and password come from the environment.
// Prints the Ids it changed as JSON.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;

public class BatchWrites {
    public static void main(String[] args) throws Exception {
        String url = System.getenv("SFPG_PROXY_JDBC_URL");
        String user = System.getenv("SFPG_PROXY_USER");
        String password = System.getenv("SFPG_PROXY_PASSWORD");
        try (Connection connection = DriverManager.getConnection(url, user, password)) {
            connection.setAutoCommit(false);
            List<Long> ids = new ArrayList<>();
            List<String> sfids = new ArrayList<>();
            try (PreparedStatement select = connection.prepareStatement(
                    "SELECT id, sfid FROM salesforce.account WHERE sfid IS NOT NULL ORDER BY id LIMIT 3");
                 ResultSet rows = select.executeQuery()) {
                while (rows.next()) {
                    ids.add(rows.getLong(1));
                    sfids.add(rows.getString(2));
                }
            }
            try (PreparedStatement update = connection.prepareStatement(
                    "UPDATE salesforce.account SET billingcity = ? WHERE id = ?")) {
                for (int i = 0; i < ids.size(); i++) {
                    update.setString(1, "Batch " + i);
                    update.setLong(2, ids.get(i));
                    update.addBatch();
                }
                update.executeBatch();
            }
            try (PreparedStatement insert = connection.prepareStatement(
                    "INSERT INTO salesforce.account (name) VALUES (?)")) {
                insert.setString(1, "JDBC Co");
                insert.addBatch();
                insert.executeBatch();
            }
            connection.commit();
            StringBuilder json = new StringBuilder("{\"updated\": [");
            for (int i = 0; i < sfids.size(); i++) {
                json.append(i == 0 ? "" : ", ").append('"').append(sfids.get(i)).append('"');
            }
            json.append("]}");
            System.out.print(json);
        }
    }
}
